import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the drill's clone-point step (see aws-deps.ts). */
export const handler = stepHandler('drill-clone-point');
