import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the snapshot-previous step (see aws-deps.ts). */
export const handler = stepHandler('snapshot-previous');
