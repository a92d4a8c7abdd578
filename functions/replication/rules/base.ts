import { KEY, ROLE, STATUS } from '../metadata.js';
import { newestFirst } from './order.js';
import { type Owned, ownershipOf } from './ownership.js';

export interface BaseCandidate extends Owned {
  ref: string;
  is_a_snapshot: boolean;
  /** uuid of the VM this is a snapshot of. */
  snapshotOf: string;
}

/**
 * The delta base of a source VM: the newest snapshot of that VM that this job made and marked
 * exported. Older exported snapshots of the job are superseded (pruned after a commit); a user's
 * snapshot, another job's snapshot and a pending one are neither the base nor pruned.
 */
export function selectBase<T extends BaseCandidate>(
  snapshots: T[],
  jobId: string,
  vmUuid: string,
): { base: T | undefined; superseded: T[] } {
  const exported = snapshots
    .filter(
      (s) =>
        s.is_a_snapshot &&
        s.snapshotOf === vmUuid &&
        ownershipOf(s, jobId).kind === 'ours' &&
        s.other_config[KEY.vm] === vmUuid &&
        s.other_config[KEY.role] === ROLE.sourceSnapshot &&
        s.other_config[KEY.status] === STATUS.exported,
    )
    .sort(newestFirst);
  return { base: exported[0], superseded: exported.slice(1) };
}
