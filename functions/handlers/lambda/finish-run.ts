import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the finish-run step (see aws-deps.ts). */
export const handler = stepHandler('finish-run');
