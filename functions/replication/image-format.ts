import type { JobConfig } from '../config/schema.js';
import type { SrRecord, VdiRecord, Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';
import type { DiskRef } from './inventory.js';

/**
 * The image format of each disk, and what it allows. XCP-ng 8.3 stores a disk as qcow2 when it was
 * asked for or is larger than VHD's 2040 GiB; XAPI then refuses a VHD export over 2040 GiB
 * (VDI_TOO_LARGE, after the 200) and VHD differences of a qcow2 image, so vhd mode cannot carry
 * such a disk: it goes in cbt mode, and its replica must be qcow2 too, on an SR whose driver has it.
 */
export type ImageFormat = 'vhd' | 'qcow2';

/** xapi's Constants.max_vhd_size. */
export const MAX_VHD_SIZE = 2040 * 2 ** 30;

/** SR types XCP-ng documents with qcow2 (not SMB, not LINSTOR/XOSTOR), for drivers that do not list their formats. */
const QCOW2_SR_TYPES = new Set(['ext', 'nfs', 'file', 'lvm', 'lvmoiscsi', 'lvmohba', 'lvmofcoe']);

export interface DiskFormat {
  format: ImageFormat;
  /** how it was found, for messages and logs */
  reason: string;
}

const named = (v: VdiRecord | undefined): ImageFormat | undefined => {
  const f = v?.sm_config?.['image-format'];
  return f === 'qcow2' || f === 'vhd' ? f : undefined;
};

/** `image-format`, else that of the VDI it is a snapshot of (SM may leave it off snapshots), else the size. */
export function diskFormat(vdi: VdiRecord, snapshotOf?: VdiRecord): DiskFormat {
  const own = named(vdi);
  if (own) return { format: own, reason: `sm_config image-format is ${own}` };
  const parent = named(snapshotOf);
  if (parent) return { format: parent, reason: `the disk it is a snapshot of has image-format ${parent}` };
  if (vdi.virtual_size > MAX_VHD_SIZE)
    return { format: 'qcow2', reason: `its ${vdi.virtual_size} bytes exceed VHD's 2040 GiB` };
  return { format: 'vhd', reason: 'no image-format and at most 2040 GiB' };
}

/** diskFormat, reading the snapshot_of record only when the VDI itself does not say. */
export async function detectFormat(xapi: Xapi, vdi: VdiRecord): Promise<DiskFormat> {
  if (named(vdi) || !vdi.is_a_snapshot || vdi.snapshot_of === 'OpaqueRef:NULL') return diskFormat(vdi);
  const of = await xapi.getRecord('VDI', vdi.snapshot_of).catch(() => undefined);
  return diskFormat(vdi, of);
}

/** Whether the SR's driver stores qcow2: its SM record's supported_image_formats, else the documented SR types. */
export async function srTakesQcow2(xapi: Xapi, sr: SrRecord): Promise<boolean> {
  const sms = [...(await xapi.getAllRecords('SM')).values()];
  const listed = sms.find((sm) => sm.type === sr.type)?.supported_image_formats ?? [];
  return listed.length > 0 ? listed.includes('qcow2') : QCOW2_SR_TYPES.has(sr.type);
}

/**
 * Checks, before anything is created, that every qcow2 disk of the VM can be replicated: vhd mode
 * cannot carry it, cbt must be possible (CBT on or enableCbt), and the destination SR must take qcow2.
 * Returns the format per userdevice.
 */
export async function checkFormats(
  source: Xapi,
  destination: Xapi,
  job: Pick<JobConfig, 'transferMode' | 'enableCbt'>,
  disks: DiskRef[],
  srRef: string,
): Promise<Map<string, DiskFormat>> {
  const out = new Map<string, DiskFormat>();
  for (const d of disks) out.set(d.userdevice, await detectFormat(source, d.vdi.rec));
  const qcow2 = disks.filter((d) => out.get(d.userdevice)!.format === 'qcow2');
  if (qcow2.length === 0) return out;
  const what = qcow2
    .map((d) => `disk ${d.userdevice} is qcow2 (${out.get(d.userdevice)!.reason})`)
    .join('; ');
  if (job.transferMode === 'vhd')
    throw new XcrPermanentError(
      'QCOW2_NEEDS_CBT',
      `${what}: XAPI exports no VHD over 2040 GiB and no VHD differences of a qcow2 image, so vhd mode cannot carry it; set the job's transferMode to cbt or auto`,
    );
  const noCbt = qcow2.filter((d) => !d.vdi.rec.cbt_enabled);
  if (noCbt.length && !job.enableCbt)
    throw new XcrPermanentError(
      'QCOW2_NEEDS_CBT',
      `${what}: it can only be replicated in cbt mode and CBT is off on disk ${noCbt.map((d) => d.userdevice).join(', ')}; set the job's enableCbt to true`,
    );
  const sr = await destination.getRecord('SR', srRef);
  if (!(await srTakesQcow2(destination, sr)))
    throw new XcrPermanentError(
      'SR_NO_QCOW2',
      `${what}, and the destination SR "${sr.name_label}" (type ${sr.type}) cannot store qcow2 disks; choose a destination sr of type ${[...QCOW2_SR_TYPES].join(', ')}`,
    );
  return out;
}
