/** Shard 2 of the failover/failback fault matrix of a cbt job (test/faults/failover-matrix.ts). */
import { failoverMatrix, VARIANTS } from './failover-matrix.js';

failoverMatrix(1, VARIANTS.cbt);
