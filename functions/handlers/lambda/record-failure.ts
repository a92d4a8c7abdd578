import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the record-failure step (see aws-deps.ts). */
export const handler = stepHandler('record-failure');
