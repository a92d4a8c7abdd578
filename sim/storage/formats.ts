/**
 * Image formats as XCP-ng 8.3's SM drivers choose them (qcow2 support shipped in May 2026).
 * A VDI.create takes `sm_config['image-format']` (or the legacy `type`) when given; otherwise the
 * SR's PBD `device_config['preferred-image-formats']` (a comma list, default "vhd,qcow2"), first
 * format that can hold the size — so a disk over 2040 GiB becomes qcow2 where qcow2 is allowed.
 * The chosen format is written back into the VDI's sm_config, as SM does. SR types whose driver
 * has no qcow2 (SMB, LINSTOR) keep VHD's 2040 GiB limit; SR types without image files (dummy,
 * iso, udev) carry no `image-format` at all.
 */
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import type { XRecord } from '../wire/values.js';
import { hasChains } from './settings.js';

export type ImageFormat = 'vhd' | 'qcow2';
export const IMAGE_FORMAT = 'image-format';
const GiB = 1024 ** 3;
/** xapi's Constants.max_vhd_size and SM's MAX_VHD_SIZE. */
export const MAX_VHD_SIZE = 2040 * GiB;
/** The qcow2 limit XCP-ng documents for every SR type. */
export const MAX_QCOW2_SIZE = 16381 * GiB;
const MAX_SIZE: Record<ImageFormat, number> = { vhd: MAX_VHD_SIZE, qcow2: MAX_QCOW2_SIZE };

/** SR types whose XCP-ng driver stores qcow2 images (the others with images store VHD only). */
const QCOW2_SR_TYPES = new Set(['ext', 'nfs', 'file', 'lvm', 'lvmoiscsi', 'lvmohba', 'lvmofcoe']);

/** What the SR type's SM record lists in `supported_image_formats` ([] = the driver decides). */
export function supportedImageFormats(srType: unknown): string[] {
  if (QCOW2_SR_TYPES.has(String(srType))) return ['vhd', 'raw', 'qcow2'];
  if (hasChains(srType) || srType === 'linstor') return ['vhd', 'raw'];
  return [];
}

function formatsOf(srType: unknown): ImageFormat[] {
  const s = supportedImageFormats(srType);
  return (['vhd', 'qcow2'] as const).filter((f) => s.includes(f));
}

/** SM's parseImageFormats: known names from the comma list, else the default. */
function preferred(pool: PoolState, sr: string): ImageFormat[] {
  const pbd = (pool.db.get('SR', sr).PBDs as string[]).map((p) => pool.db.find('PBD', p)).find(Boolean);
  const list = String((pbd?.device_config as XRecord | undefined)?.['preferred-image-formats'] ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e): e is ImageFormat => e === 'vhd' || e === 'qcow2');
  return list.length ? list : ['vhd', 'qcow2'];
}

const sizeError = (f: ImageFormat): XapiError =>
  new XapiError('SR_BACKEND_FAILURE_79', [
    '',
    `VDI Invalid size [opterr=VDI size must be between 1 MB and ${MAX_SIZE[f] / 1024 ** 2} MB]`,
    '',
  ]);

/** The format a new VDI of `size` on `sr` gets, or undefined on SR types without image files. */
export function chooseImageFormat(
  pool: PoolState,
  sr: string,
  smConfig: XRecord,
  size: number,
): ImageFormat | undefined {
  const srType = pool.db.get('SR', sr).type;
  const allowed = formatsOf(srType);
  if (allowed.length === 0) return undefined;
  const asked = smConfig[IMAGE_FORMAT] ?? smConfig.type;
  if (asked !== undefined && asked !== 'raw') {
    const f = String(asked) as ImageFormat;
    if (!allowed.includes(f))
      throw new XapiError('SR_BACKEND_FAILURE_66', [
        '',
        `Invalid VDI type [opterr=Invalid VDI type ${f}]`,
        '',
      ]);
    if (size > MAX_SIZE[f]) throw sizeError(f);
    return f;
  }
  const order = preferred(pool, sr).filter((f) => allowed.includes(f));
  const fits = order.find((f) => size <= MAX_SIZE[f]);
  if (!fits) throw sizeError(order[order.length - 1] ?? 'vhd');
  return fits;
}

export function imageFormatOf(pool: PoolState, vdi: string): ImageFormat | undefined {
  const f = (pool.db.get('VDI', vdi).sm_config as XRecord)[IMAGE_FORMAT];
  return f === 'vhd' || f === 'qcow2' ? f : undefined;
}

/** A resize past the format's limit fails as SM's size check does. */
export function assertFormatHolds(pool: PoolState, vdi: string, size: number): void {
  const f = imageFormatOf(pool, vdi);
  if (f && size > MAX_SIZE[f]) throw sizeError(f);
}
