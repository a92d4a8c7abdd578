/** Shard 1 of the failover/failback fault matrix (test/faults/failover-matrix.ts). */
import { failoverMatrix } from './failover-matrix.js';

failoverMatrix(0);
