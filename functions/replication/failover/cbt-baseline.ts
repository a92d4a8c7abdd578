/**
 * CBT on a DR copy, so that a failback can send only the blocks the copy changed over NBD. A clone
 * starts without CBT and its CBT log chain never reaches back to what it was cloned from
 * (docs/xapi.md, "CBT and NBD"), so the recovery point R cannot be the `vdi_from` of
 * `VDI.list_changed_blocks`: before the copy first starts, CBT is turned on on its disks and a
 * snapshot of it — the baseline, whose content is R's — starts the chain that the failback's
 * reverse snapshots continue. Wanted when the job moves changed blocks (transferMode cbt or auto)
 * or a disk is qcow2 (which has no VHD differencing export); a pool without the CBT feature, or a
 * disk that refuses it, is said and left to the VHD differencing export (or a full copy for qcow2).
 */
import type { JobConfig } from '../../config/schema.js';
import type { Xapi } from '../../xapi/index.js';
import { enableCbt } from '../cbt-mode.js';
import { detectFormat } from '../image-format.js';
import { findVmByUuid, vmDisks } from '../inventory.js';
import { FO_ROLE } from '../metadata.js';
import { copySnapshot } from './copy-snapshot.js';

export interface CbtBaseline {
  /** The baseline snapshot's uuid; absent when no disk of the copy has CBT. */
  baseline?: string;
  notes: string[];
}

export async function cbtBaseline(
  dest: Xapi,
  job: Pick<JobConfig, 'transferMode'>,
  o: { jobId: string; run: string; copy: string },
): Promise<CbtBaseline> {
  const copy = await findVmByUuid(dest, o.copy);
  const disks = await vmDisks(dest, copy.rec);
  const formats = await Promise.all(disks.map((d) => detectFormat(dest, d.vdi.rec)));
  if (job.transferMode === 'vhd' && formats.every((f) => f.format === 'vhd')) return { notes: [] };
  const failed = await enableCbt(dest, disks);
  const notes = [...failed].map(
    ([dev, why]) =>
      `disk ${dev} of the DR copy has no CBT (${why}): a failback sends it as a VHD differencing export, or in full if it is qcow2`,
  );
  if (failed.size === disks.length) return { notes };
  const snap = await copySnapshot(dest, {
    jobId: o.jobId,
    run: o.run,
    copy: await findVmByUuid(dest, o.copy),
    role: FO_ROLE.cbtBaseline,
    diskRole: FO_ROLE.cbtBaselineDisk,
    label: `${copy.rec.name_label} (xcr cbt baseline)`,
  });
  return { baseline: snap.rec.uuid, notes };
}
