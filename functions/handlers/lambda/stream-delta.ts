import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the stream-delta step (see aws-deps.ts). */
export const handler = stepHandler('stream-delta');
