/** Shard 1 of the failover/failback fault matrix of a cbt job (test/faults/failover-matrix.ts). */
import { failoverMatrix, VARIANTS } from './failover-matrix.js';

failoverMatrix(0, VARIANTS.cbt);
