import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the failover workflows' failback-end step (see aws-deps.ts). */
export const handler = stepHandler('failback-end');
