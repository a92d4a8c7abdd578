import type { JobConfig } from '../../config/schema.js';
import type { TransferMode } from '../contract.js';
import { XcrPermanentError } from '../errors.js';

/**
 * Choosing vhd or cbt for one disk, pure over what cbt-mode.ts found. cbt needs CBT on the new
 * snapshot and an NBD server that answers for it: without them `auto` falls back to vhd with the
 * reason and `cbt` (or a qcow2 disk, which only cbt carries) fails the VM with CBT_UNAVAILABLE, so
 * nobody believes cbt is in use when it is not.
 *
 * A delta base that CBT cannot diff from (no CBT on it, or no CBT chain to the new snapshot) is not
 * such a failure: the new snapshot has CBT and becomes the next base, so sending this disk in full
 * over the cbt path heals the job for good. Failing instead would fail every later run the same way,
 * since a failed run keeps its base. `auto` sends a VHD delta there instead (only the changes
 * travel), unless the base holds CBT metadata only (no data to diff in vhd mode): then a cbt full,
 * which resumes from a cursor where a vhd full must fit one invocation.
 */
export interface ModeFacts {
  userdevice: string;
  transferMode: JobConfig['transferMode'];
  qcow2: boolean;
  /** Why cbt cannot serve the new snapshot (enableCbt failed, CBT off on it, NBD), or undefined. */
  obstacle: string | undefined;
  /** The delta's base snapshot VDI; absent for a full. */
  base?: {
    /** Why CBT cannot list the changes from it to the new snapshot, or undefined when it can. */
    unusable: string | undefined;
    /** `VDI.data_destroy` left CBT metadata only. */
    dataDestroyed: boolean;
  };
}

export interface ModeChoice {
  mode: TransferMode;
  reason: string;
  /** The disk goes full although the plan had a delta: the fullReason. */
  full?: string;
  /** Said in the run result. */
  warning?: string;
}

export function decideMode(f: ModeFacts): ModeChoice {
  if (f.transferMode === 'vhd' && !f.qcow2) return { mode: 'vhd', reason: 'transferMode is vhd' };
  const qcow2Why = f.qcow2 ? ' (the disk is qcow2: only cbt mode carries it)' : '';
  if (f.obstacle) {
    if (f.transferMode === 'cbt' || f.qcow2)
      throw new XcrPermanentError('CBT_UNAVAILABLE', `disk ${f.userdevice}${qcow2Why}: ${f.obstacle}`);
    return { mode: 'vhd', reason: `auto fell back to vhd: ${f.obstacle}` };
  }
  const unusable = f.base?.unusable;
  if (unusable && f.transferMode === 'auto' && !f.qcow2 && !f.base?.dataDestroyed)
    return { mode: 'vhd', reason: `auto fell back to vhd for this delta: the base snapshot ${unusable}` };
  if (unusable) {
    const full = `the base snapshot of disk ${f.userdevice} ${unusable}: sent in full over NBD${qcow2Why}; the next run is a delta again`;
    return { mode: 'cbt', reason: full, full, warning: full };
  }
  return {
    mode: 'cbt',
    reason: f.qcow2
      ? 'the disk is qcow2, which only cbt mode carries; CBT and NBD are usable'
      : `transferMode is ${f.transferMode}; CBT and NBD are usable`,
  };
}
