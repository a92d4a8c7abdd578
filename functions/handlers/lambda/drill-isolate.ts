import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the drill's isolate step (see aws-deps.ts). */
export const handler = stepHandler('drill-isolate');
