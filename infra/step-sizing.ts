import type { StepName } from '../functions/replication/contract.js';

/**
 * Memory and timeout of each step Lambda, as plain numbers (no CDK), so the CLI's cost estimate
 * reads the same figures the stack deploys. stream-delta moves whole disks: the 15-minute maximum
 * and ~1 vCPU (1769 MB) so checksumming keeps up with the ~75 MB/s a VPC function gets; finish-run
 * reads the run back from the run store (a 5,000-VM run in ~10 Query pages) and applies retention for
 * the whole run (one listing of the destination, then the deletions); load-batch and record-failure
 * only touch the run store; the others make a few XAPI calls.
 */
export const STEP_MEMORY_MIB: Readonly<Record<StepName, number>> = {
  'lock-check': 512,
  'load-batch': 256,
  'snapshot-previous': 512,
  'stream-delta': 1769,
  'commit-or-rollback': 512,
  'record-failure': 256,
  'finish-run': 512,
};

export const STEP_TIMEOUT_MINUTES: Readonly<Record<StepName, number>> = {
  'lock-check': 5,
  'load-batch': 1,
  'snapshot-previous': 5,
  'stream-delta': 15,
  'commit-or-rollback': 10,
  'record-failure': 1,
  'finish-run': 10,
};
