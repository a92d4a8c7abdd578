import { KEY, parsePendingSnapshotName } from '../metadata.js';

/**
 * Who owns an object carrying (or looking like it carries) xcr metadata. The keys alone prove
 * nothing: `VM.clone`, `VM.copy`, `VDI.clone`, `VDI.copy` and `VM.snapshot` copy `other_config`, so a
 * user's copy of a recovery point, a replica disk or a source snapshot carries the same `xcr:*` keys.
 * What a copy cannot inherit is its own uuid: every object xcr creates stores it under `xcr:self` at
 * the moment it is created or tagged, so a stored self that is not the object's uuid marks a copy.
 */
export interface Owned {
  uuid: string;
  other_config: Record<string, string>;
  /** Only source snapshots can be recognised by name (before they are tagged). */
  name_label?: string;
}

export type Ownership =
  /** Made by this job. `verified` = its `xcr:self` matches; `run` = the run that made it, if known. */
  | { kind: 'ours'; verified: boolean; run: string | undefined }
  /** Carries this job's keys but a foreign `xcr:self`: a user's copy, never touched. */
  | { kind: 'copy'; of: string }
  /** Made by another job: never touched, in any state. */
  | { kind: 'other-job'; job: string }
  /** No xcr metadata at all. */
  | { kind: 'none' };

export function ownershipOf(obj: Owned, jobId: string): Ownership {
  const oc = obj.other_config;
  const job = oc[KEY.job];
  if (job === undefined) {
    const pending = obj.name_label ? parsePendingSnapshotName(obj.name_label) : undefined;
    if (!pending) return { kind: 'none' };
    if (pending.jobId !== jobId) return { kind: 'other-job', job: pending.jobId };
    return { kind: 'ours', verified: false, run: pending.runId };
  }
  if (job !== jobId) return { kind: 'other-job', job };
  const self = oc[KEY.self];
  if (self !== undefined && self !== obj.uuid) return { kind: 'copy', of: self };
  return { kind: 'ours', verified: self === obj.uuid, run: oc[KEY.run] };
}

/** Which runs a sweep may clean up: every run but the current one (lock-check), or exactly one
 *  run's objects of one VM (rollback). */
export type RunScope = { except: string } | { run: string; vm: string };

export function inScope(scope: RunScope, run: string | undefined, vm: string | undefined): boolean {
  if ('except' in scope) return run !== scope.except;
  return run === scope.run && vm === scope.vm;
}
