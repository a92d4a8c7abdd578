import type { JobConfig } from '../config/schema.js';
import type { VdiRecord, Xapi } from '../xapi/index.js';
import { openNbd } from './cbt-transfer.js';
import type { TransferMode } from './contract.js';
import { XcrPermanentError } from './errors.js';
import type { ImageFormat } from './image-format.js';
import type { DiskRef, Ref } from './inventory.js';
import type { DiskDecision } from './rules/full-or-delta.js';

/**
 * Choosing vhd or cbt per disk. cbt needs CBT on the new snapshot VDI (and, for a delta, on the base
 * snapshot VDI) and an NBD server that answers for the new snapshot. `auto` falls back to vhd with the
 * reason; `cbt` fails the VM instead (CBT_UNAVAILABLE) so nobody believes cbt is in use when it is not.
 */
export interface ModeChoice {
  mode: TransferMode;
  reason: string;
}

/** Turns CBT on for the live disks that lack it; returns the reason per userdevice where that failed. */
export async function enableCbt(xapi: Xapi, disks: DiskRef[]): Promise<Map<string, string>> {
  const failed = new Map<string, string>();
  for (const disk of disks) {
    if (disk.vdi.rec.cbt_enabled) continue;
    try {
      await xapi.call('VDI.enable_cbt', disk.vdi.ref);
    } catch (err) {
      failed.set(disk.userdevice, `VDI.enable_cbt failed: ${(err as Error).message}`);
    }
  }
  return failed;
}

/** Why cbt cannot serve this disk, or undefined when it can. Probes NBD with one real connection. */
async function cbtObstacle(
  xapi: Xapi,
  snapshot: Ref<VdiRecord>,
  base: VdiRecord | undefined,
  enableError: string | undefined,
): Promise<string | undefined> {
  if (enableError) return enableError;
  if (!snapshot.rec.cbt_enabled) return 'CBT is not enabled on the disk (enableCbt: true turns it on)';
  if (base && !base.cbt_enabled) return 'CBT was not enabled on the base snapshot';
  return nbdObstacle(xapi, snapshot.ref);
}

/** Why NBD cannot serve this VDI, or undefined when one real connection to it succeeds. */
export async function nbdObstacle(xapi: Xapi, vdi: string): Promise<string | undefined> {
  try {
    const nbd = await openNbd(xapi, vdi, 1, 5_000);
    await nbd.close();
  } catch (err) {
    return `NBD is not usable: ${(err as Error).message}`;
  }
  return undefined;
}

export async function chooseMode(
  xapi: Xapi,
  job: Pick<JobConfig, 'transferMode'>,
  disk: {
    userdevice: string;
    snapshot: Ref<VdiRecord>;
    base?: VdiRecord;
    enableError?: string;
    /** qcow2 disks have no vhd mode (checkFormats refused transferMode vhd before the snapshot) */
    format?: ImageFormat;
  },
): Promise<ModeChoice> {
  const qcow2 = disk.format === 'qcow2';
  if (job.transferMode === 'vhd' && !qcow2) return { mode: 'vhd', reason: 'transferMode is vhd' };
  const obstacle = await cbtObstacle(xapi, disk.snapshot, disk.base, disk.enableError);
  if (!obstacle)
    return {
      mode: 'cbt',
      reason: qcow2
        ? 'the disk is qcow2, which only cbt mode carries; CBT and NBD are usable'
        : `transferMode is ${job.transferMode}; CBT and NBD are usable`,
    };
  if (job.transferMode === 'cbt' || qcow2) {
    const why = qcow2 ? ' (the disk is qcow2: only cbt mode carries it)' : '';
    throw new XcrPermanentError('CBT_UNAVAILABLE', `disk ${disk.userdevice}${why}: ${obstacle}`);
  }
  return { mode: 'vhd', reason: `auto fell back to vhd: ${obstacle}` };
}

/**
 * A delta against a base reduced to CBT metadata (VDI.data_destroy) has no data to diff in vhd mode:
 * such a disk becomes a full.
 */
export function fitDecision(
  decision: DiskDecision,
  mode: TransferMode,
  base: VdiRecord | undefined,
): DiskDecision {
  if (decision.kind !== 'delta' || mode === 'cbt' || base?.type !== 'cbt_metadata') return decision;
  return {
    userdevice: decision.userdevice,
    kind: 'full',
    fullReason: 'the base snapshot holds CBT metadata only (data destroyed) and this disk uses vhd mode',
  };
}

/**
 * Reduces the new base snapshot's disks to CBT metadata (VDI.data_destroy): the source gets the space
 * back and the next cbt delta still diffs against them. Returns warnings (it never fails a commit).
 */
export async function destroySnapshotData(xapi: Xapi, disks: DiskRef[]): Promise<string[]> {
  const problems: string[] = [];
  for (const disk of disks) {
    const rec = await xapi.getRecord('VDI', disk.vdi.ref);
    if (rec.type === 'cbt_metadata') continue;
    try {
      await xapi.callAsync('VDI.data_destroy', disk.vdi.ref);
    } catch (err) {
      problems.push(
        `disk ${disk.userdevice}: VDI.data_destroy failed (${(err as Error).message}); its data stays`,
      );
    }
  }
  return problems;
}
