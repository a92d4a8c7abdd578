/**
 * Validation of the metadata of a forward-only VHD stream: footer, header and BAT. Everything here
 * is pure; the streaming parser calls it as the structures arrive.
 */
import { decodeFooter, FOOTER_CHECKSUM_OFFSET, FOOTER_COOKIE, vhdChecksum } from './footer.js';
import { decodeHeader, HEADER_CHECKSUM_OFFSET, HEADER_COOKIE, headerDataOffset } from './header.js';
import {
  bitmapBytes,
  DISK_TYPE_DIFFERENCING,
  DISK_TYPE_DYNAMIC,
  DISK_TYPE_FIXED,
  FOOTER_SIZE,
  HEADER_SIZE,
  isPowerOfTwo,
  roundUp,
  SECTOR_SIZE,
  UNUSED_BAT_ENTRY,
  VHD_VERSION,
  type VhdFooter,
  VhdFormatError,
  type VhdHeader,
} from './types.js';

/** Default cap on the bytes before the first block (header area + BAT) a verifier may buffer. */
export const DEFAULT_MAX_METADATA_BYTES = 64 * 1024 * 1024;
/** Largest block size accepted: a reader holds one block in memory (XAPI and blktap use 2 MiB). */
export const MAX_BLOCK_SIZE = 256 * 1024 * 1024;

export interface ParseLimits {
  /** Total stream length announced by the transport (e.g. Content-Length), checked against the BAT. */
  expectedLength?: number;
  /** Largest allowed end offset of the BAT (bounds what must be buffered before the first block). */
  maxMetadataBytes?: number;
}

/** Validates a footer found at stream offset `at` (0 for the leading copy). */
export function checkFooter(buf: Buffer, at: number): VhdFooter {
  if (buf.toString('latin1', 0, 8) !== FOOTER_COOKIE) {
    throw new VhdFormatError('BAD_COOKIE', at, `footer cookie is not "${FOOTER_COOKIE}"`);
  }
  const footer = decodeFooter(buf);
  const expected = vhdChecksum(buf, FOOTER_CHECKSUM_OFFSET);
  if (footer.checksum !== expected) {
    throw new VhdFormatError(
      'BAD_CHECKSUM',
      at + FOOTER_CHECKSUM_OFFSET,
      `footer checksum ${footer.checksum.toString(16)}, computed ${expected.toString(16)}`,
    );
  }
  if (footer.version !== VHD_VERSION) {
    throw new VhdFormatError('UNSUPPORTED_VERSION', at + 12, `footer version ${footer.version.toString(16)}`);
  }
  if (footer.diskType === DISK_TYPE_FIXED) {
    throw new VhdFormatError('FIXED_DISK', at + 60, 'fixed VHDs are not streamable this way');
  }
  if (footer.diskType !== DISK_TYPE_DYNAMIC && footer.diskType !== DISK_TYPE_DIFFERENCING) {
    throw new VhdFormatError('UNSUPPORTED_DISK_TYPE', at + 60, `disk type ${footer.diskType}`);
  }
  if (footer.dataOffset < FOOTER_SIZE) {
    throw new VhdFormatError('BAD_DATA_OFFSET', at + 16, `header offset ${footer.dataOffset}`);
  }
  if (footer.currentSize < 0) {
    throw new VhdFormatError('BAD_DISK_SIZE', at + 48, 'current size above 2^53');
  }
  return footer;
}

/** Validates the dynamic disk header found at `footer.dataOffset`. */
export function checkHeader(buf: Buffer, footer: VhdFooter, limits: ParseLimits = {}): VhdHeader {
  const at = footer.dataOffset;
  if (buf.toString('latin1', 0, 8) !== HEADER_COOKIE) {
    throw new VhdFormatError('BAD_COOKIE', at, `header cookie is not "${HEADER_COOKIE}"`);
  }
  const header = decodeHeader(buf);
  const expected = vhdChecksum(buf, HEADER_CHECKSUM_OFFSET);
  if (header.checksum !== expected) {
    throw new VhdFormatError(
      'BAD_CHECKSUM',
      at + HEADER_CHECKSUM_OFFSET,
      `header checksum ${header.checksum.toString(16)}, computed ${expected.toString(16)}`,
    );
  }
  if (headerDataOffset(buf) !== 0xffffffffffffffffn) {
    throw new VhdFormatError('BAD_DATA_OFFSET', at + 8, 'header data offset is not all ones');
  }
  if (header.headerVersion !== VHD_VERSION) {
    throw new VhdFormatError(
      'UNSUPPORTED_VERSION',
      at + 24,
      `header version ${header.headerVersion.toString(16)}`,
    );
  }
  if (
    !isPowerOfTwo(header.blockSize) ||
    header.blockSize < SECTOR_SIZE ||
    header.blockSize > MAX_BLOCK_SIZE
  ) {
    throw new VhdFormatError('BAD_BLOCK_SIZE', at + 32, `block size ${header.blockSize}`);
  }
  if (header.tableOffset < at + HEADER_SIZE) {
    throw new VhdFormatError(
      'BAD_STRUCTURE_ORDER',
      at + 16,
      `BAT offset ${header.tableOffset} is not after the header (forward-only stream)`,
    );
  }
  if (header.maxTableEntries * header.blockSize < footer.currentSize) {
    throw new VhdFormatError(
      'BAD_TABLE_SIZE',
      at + 28,
      `${header.maxTableEntries} BAT entries do not cover ${footer.currentSize} bytes`,
    );
  }
  const max = limits.maxMetadataBytes ?? DEFAULT_MAX_METADATA_BYTES;
  if (header.tableOffset + header.maxTableEntries * 4 > max) {
    throw new VhdFormatError('METADATA_TOO_LARGE', at + 16, `header area + BAT end beyond ${max} bytes`);
  }
  return header;
}

export interface VhdLayout {
  bat: Uint32Array;
  /** Allocated block indexes in file order. */
  order: Uint32Array;
  bitmapBytes: number;
  /** Offset of the trailing footer. */
  dataEnd: number;
  totalLength: number;
}

/** Decodes and checks the BAT, and derives where each block and the trailing footer must be. */
export function planLayout(
  footer: VhdFooter,
  header: VhdHeader,
  batBuf: Buffer,
  limits: ParseLimits = {},
): VhdLayout {
  const n = header.maxTableEntries;
  const tableAt = header.tableOffset;
  const batEnd = tableAt + n * 4;
  const headerAt = footer.dataOffset;
  const bm = bitmapBytes(header.blockSize);
  const span = bm + header.blockSize;
  const usedEntries = Math.ceil(footer.currentSize / header.blockSize);
  const bat = new Uint32Array(n);
  let allocated = 0;
  let sorted = true;
  let prevStart = -1;
  for (let i = 0; i < n; i++) {
    const entry = batBuf.readUInt32BE(i * 4);
    bat[i] = entry;
    if (entry === UNUSED_BAT_ENTRY) continue;
    const entryAt = tableAt + i * 4;
    if (i >= usedEntries) {
      throw new VhdFormatError('BAT_PAST_END', entryAt, `block ${i} lies beyond the virtual size`);
    }
    const start = entry * SECTOR_SIZE;
    const end = start + span;
    if (
      start < FOOTER_SIZE ||
      (start < headerAt + HEADER_SIZE && end > headerAt) ||
      (start < batEnd && end > tableAt)
    ) {
      throw new VhdFormatError(
        'BAT_IN_HEADER_AREA',
        entryAt,
        `block ${i} at ${start} overlaps footer/header/BAT`,
      );
    }
    if (start < batEnd) {
      throw new VhdFormatError(
        'BAT_NOT_ASCENDING',
        entryAt,
        `block ${i} at ${start} precedes the end of the BAT`,
      );
    }
    if (limits.expectedLength !== undefined && end + FOOTER_SIZE > limits.expectedLength) {
      throw new VhdFormatError(
        'BAT_PAST_END',
        entryAt,
        `block ${i} ends at ${end}, past the stream length ${limits.expectedLength}`,
      );
    }
    if (start < prevStart) sorted = false;
    prevStart = start;
    allocated++;
  }
  const order = new Uint32Array(allocated);
  let k = 0;
  for (let i = 0; i < n; i++) if (bat[i] !== UNUSED_BAT_ENTRY) order[k++] = i;
  if (!sorted) order.sort((a, b) => bat[a]! - bat[b]!);
  let end = Math.max(headerAt + HEADER_SIZE, batEnd);
  for (let j = 0; j < order.length; j++) {
    const i = order[j]!;
    const start = bat[i]! * SECTOR_SIZE;
    if (start < end && j > 0) {
      throw new VhdFormatError(
        'BAT_OVERLAP',
        tableAt + i * 4,
        `block ${i} at ${start} overlaps the previous block`,
      );
    }
    end = Math.max(end, start + span);
  }
  if (footer.diskType === DISK_TYPE_DIFFERENCING) {
    for (const l of header.parentLocators) {
      if (l.platformCode === 0 || l.dataOffset < 0) continue;
      const space = l.dataSpace < SECTOR_SIZE ? l.dataSpace * SECTOR_SIZE : l.dataSpace;
      end = Math.max(end, l.dataOffset + space);
    }
  }
  const dataEnd = roundUp(end, SECTOR_SIZE);
  const totalLength = dataEnd + FOOTER_SIZE;
  if (limits.expectedLength !== undefined && limits.expectedLength !== totalLength) {
    const code = limits.expectedLength > totalLength ? 'TRAILING_BYTES' : 'TRUNCATED';
    throw new VhdFormatError(
      code,
      Math.min(totalLength, limits.expectedLength),
      'stream length disagrees with BAT',
    );
  }
  return { bat, order, bitmapBytes: bm, dataEnd, totalLength };
}
