import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the failover workflows' failover-prepare step (see aws-deps.ts). */
export const handler = stepHandler('failover-prepare');
