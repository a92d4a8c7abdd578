/** The failover/failback fault matrix of a cbt job, in one shard (test/faults/failover-matrix.ts). */
import { failoverMatrix, VARIANTS } from './failover-matrix.js';

failoverMatrix(0, VARIANTS.cbt);
