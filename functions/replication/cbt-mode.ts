import type { JobConfig } from '../config/schema.js';
import { type VdiRecord, type Xapi, XapiError } from '../xapi/index.js';
import { openNbd } from './cbt-transfer.js';
import type { ImageFormat } from './image-format.js';
import type { DiskRef, Ref } from './inventory.js';
import type { DiskDecision } from './rules/full-or-delta.js';
import { decideMode, type ModeChoice } from './rules/transfer-mode.js';

/**
 * Choosing vhd or cbt per disk: the facts read from the source pool (CBT on the new snapshot, a
 * real NBD connection to it, whether CBT can diff from the base), the decision in
 * rules/transfer-mode.ts.
 */
export type { ModeChoice };

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

/** Why cbt cannot serve the new snapshot, or undefined when it can. Probes NBD with one real connection. */
async function cbtObstacle(
  xapi: Xapi,
  snapshot: Ref<VdiRecord>,
  enableError: string | undefined,
): Promise<string | undefined> {
  if (enableError) return enableError;
  if (!snapshot.rec.cbt_enabled) return 'CBT is not enabled on the disk (enableCbt: true turns it on)';
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

/**
 * SM's answer when `vdi_from` and `vdi_to` are not on one CBT log chain (CBT off on either, or
 * turned off and on between them): CBTChangedBlocksError, errno 460, its opterr inside the reason
 * xapi passes on (docs/xapi.md, "CBT and NBD").
 * Only this means "no usable chain"; every other refusal keeps its own handling.
 */
export function isUnrelatedCbt(err: unknown): boolean {
  return (
    err instanceof XapiError &&
    err.code === 'SR_BACKEND_FAILURE_460' &&
    err.params.some((p) => p.includes('[opterr=Source and target VDI are unrelated]'))
  );
}

/**
 * Why CBT cannot list the changes from the base to the new snapshot, or undefined when it can. The
 * chain is asked for here, before the target exists, because a full needs a new empty target where
 * a delta clones the recovery point; once the new snapshot exists nothing can break its chain to the
 * base (disable_cbt drops only the live disk's log), so a retried step decides the same.
 */
async function baseObstacle(
  xapi: Xapi,
  base: Ref<VdiRecord>,
  snapshot: Ref<VdiRecord>,
): Promise<string | undefined> {
  if (!base.rec.cbt_enabled) return 'has no CBT (CBT was off on the disk when it was taken)';
  try {
    await xapi.call('VDI.list_changed_blocks', base.ref, snapshot.ref);
  } catch (err) {
    if (!isUnrelatedCbt(err)) throw err;
    return 'has no CBT chain to the new snapshot (VDI.list_changed_blocks: "Source and target VDI are unrelated": CBT was turned off and on again since)';
  }
  return undefined;
}

export async function chooseMode(
  xapi: Xapi,
  job: Pick<JobConfig, 'transferMode'>,
  disk: {
    userdevice: string;
    snapshot: Ref<VdiRecord>;
    /** The delta's base snapshot VDI; absent for a full. */
    base?: Ref<VdiRecord> | undefined;
    enableError?: string;
    /** qcow2 disks have no vhd mode (checkFormats refused transferMode vhd before the snapshot) */
    format?: ImageFormat;
  },
): Promise<ModeChoice> {
  const qcow2 = disk.format === 'qcow2';
  const facts = { userdevice: disk.userdevice, transferMode: job.transferMode, qcow2, obstacle: undefined };
  if (job.transferMode === 'vhd' && !qcow2) return decideMode(facts);
  const obstacle = await cbtObstacle(xapi, disk.snapshot, disk.enableError);
  const base = disk.base &&
    !obstacle && {
      unusable: await baseObstacle(xapi, disk.base, disk.snapshot),
      dataDestroyed: disk.base.rec.type === 'cbt_metadata',
    };
  return decideMode({ ...facts, obstacle, ...(base ? { base } : {}) });
}

/**
 * The plan's decision as the mode allows it: a delta whose base CBT cannot diff from goes full over
 * the cbt path (chooseMode said why), and a delta against a base reduced to CBT metadata
 * (VDI.data_destroy) has no data to diff in vhd mode, so it goes full as well.
 */
export function fitDecision(
  decision: DiskDecision,
  mode: Pick<ModeChoice, 'mode' | 'full'>,
  base: VdiRecord | undefined,
): DiskDecision {
  if (decision.kind !== 'delta') return decision;
  const full = (fullReason: string): DiskDecision => ({
    userdevice: decision.userdevice,
    kind: 'full',
    fullReason,
  });
  if (mode.full) return full(mode.full);
  if (mode.mode === 'cbt' || base?.type !== 'cbt_metadata') return decision;
  return full('the base snapshot holds CBT metadata only (data destroyed) and this disk uses vhd mode');
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
