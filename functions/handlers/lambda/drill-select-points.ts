import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the drill's select-points step (see aws-deps.ts). */
export const handler = stepHandler('drill-select-points');
