import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the load-batch step (see aws-deps.ts). */
export const handler = stepHandler('load-batch');
