import { stepHandler } from './aws-deps.js';

/** Lambda entry point of the failover workflows' failover-vm-failed step (see aws-deps.ts). */
export const handler = stepHandler('failover-vm-failed');
