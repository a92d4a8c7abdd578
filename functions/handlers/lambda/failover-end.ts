import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the failover workflows' failover-end step (see aws-deps.ts). */
export const handler = stepHandler('failover-end');
