import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the failover workflows' failback-sync step (see aws-deps.ts). */
export const handler = stepHandler('failback-sync');
