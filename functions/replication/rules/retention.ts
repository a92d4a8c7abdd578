import { KEY } from '../metadata.js';
import { newestFirst } from './order.js';
import type { Owned } from './ownership.js';
import { isVerifiedRecoveryPoint } from './sweep.js';

export interface RetentionPoint extends Owned {
  ref: string;
  is_a_snapshot: boolean;
}

/** Verified complete recovery points of a job (optionally of one source VM), newest first by the
 *  run time stored on them; copies, other jobs' and unfinished points are not recovery points. */
export function recoveryPointsOf<T extends RetentionPoint>(all: T[], jobId: string, vmUuid?: string): T[] {
  return all
    .filter((p) => isVerifiedRecoveryPoint(p, jobId))
    .filter((p) => vmUuid === undefined || p.other_config[KEY.vm] === vmUuid)
    .sort(newestFirst);
}

/**
 * Retention: of one VM's recovery points keep the `keep` newest (never fewer than one: the newest
 * is the next delta's base), delete the older ones. Only verified points count, so a user's clone
 * neither takes a place nor gets deleted.
 */
export function planRetention<T extends RetentionPoint>(
  points: T[],
  keep: number,
  jobId: string,
  vmUuid: string,
): { keep: T[]; delete: T[] } {
  const rps = recoveryPointsOf(points, jobId, vmUuid);
  const n = Math.max(1, keep);
  return { keep: rps.slice(0, n), delete: rps.slice(n) };
}
