/** Shared VHD constants, structure shapes and the typed format error (MS-VHD; all integers big-endian). */

export const SECTOR_SIZE = 512;
export const DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024;
export const FOOTER_SIZE = 512;
export const HEADER_SIZE = 1024;
export const UNUSED_BAT_ENTRY = 0xffffffff;
export const VHD_VERSION = 0x00010000;
export const DISK_TYPE_FIXED = 2;
export const DISK_TYPE_DYNAMIC = 3;
export const DISK_TYPE_DIFFERENCING = 4;

export type VhdDiskType = 'dynamic' | 'differencing';

export interface VhdGeometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

export interface VhdFooter {
  features: number;
  version: number;
  dataOffset: number;
  timestamp: number;
  creatorApp: string;
  creatorVersion: number;
  creatorHostOs: number;
  originalSize: number;
  currentSize: number;
  geometry: VhdGeometry;
  diskType: number;
  checksum: number;
  uniqueId: Buffer;
  savedState: number;
}

export interface VhdParentLocator {
  platformCode: number;
  dataSpace: number;
  dataLength: number;
  dataOffset: number;
}

export interface VhdHeader {
  tableOffset: number;
  headerVersion: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUniqueId: Buffer;
  parentTimestamp: number;
  parentUnicodeName: string;
  parentLocators: VhdParentLocator[];
}

export type VhdErrorCode =
  | 'BAD_COOKIE'
  | 'BAD_CHECKSUM'
  | 'UNSUPPORTED_VERSION'
  | 'FIXED_DISK'
  | 'UNSUPPORTED_DISK_TYPE'
  | 'BAD_BLOCK_SIZE'
  | 'BAD_DATA_OFFSET'
  | 'BAD_TABLE_SIZE'
  | 'BAT_IN_HEADER_AREA'
  | 'BAT_PAST_END'
  | 'BAT_OVERLAP'
  | 'BAT_NOT_ASCENDING'
  | 'TRUNCATED'
  | 'FOOTER_MISMATCH'
  | 'TRAILING_BYTES'
  | 'BAD_STRUCTURE_ORDER'
  | 'BAD_DISK_SIZE'
  | 'METADATA_TOO_LARGE';

/** A violation of the VHD format found at a byte offset of the stream. */
export class VhdFormatError extends Error {
  override readonly name = 'VhdFormatError';
  readonly code: VhdErrorCode;
  readonly offset: number;

  constructor(code: VhdErrorCode, offset: number, detail: string) {
    super(`${code} at byte ${offset}: ${detail}`);
    this.code = code;
    this.offset = offset;
  }
}

export interface VhdStreamInfo {
  footer: VhdFooter;
  header: VhdHeader;
  bat: Uint32Array;
  diskType: VhdDiskType;
  virtualSize: number;
  blockSize: number;
  allocatedBlocks: number;
  /** exact total byte length of the stream */
  totalLength: number;
}

export interface VhdBlock {
  index: number;
  bitmap: Buffer;
  /** data.length === blockSize */
  data: Buffer;
}

/** Bytes of the per-block sector bitmap, padded to a whole sector. */
export function bitmapBytes(blockSize: number): number {
  return roundUp(Math.ceil(blockSize / SECTOR_SIZE / 8), SECTOR_SIZE);
}

/** Bytes of a BAT of `entries` entries, padded to a whole sector. */
export function batBytes(entries: number): number {
  return roundUp(entries * 4, SECTOR_SIZE);
}

export function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
