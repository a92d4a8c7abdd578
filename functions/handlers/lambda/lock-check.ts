import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the lock-check step (see aws-deps.ts). */
export const handler = stepHandler('lock-check');
