/** Builds a VHD stream in exactly the layout XAPI's `/export_raw_vdi?format=vhd` produces (docs/xapi.md). */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { chsGeometry, encodeFooter } from './footer.js';
import { encodeHeader, PLATFORM_MACX } from './header.js';
import {
  batBytes,
  bitmapBytes,
  DEFAULT_BLOCK_SIZE,
  DISK_TYPE_DIFFERENCING,
  DISK_TYPE_DYNAMIC,
  FOOTER_SIZE,
  HEADER_SIZE,
  isPowerOfTwo,
  SECTOR_SIZE,
  UNUSED_BAT_ENTRY,
  VHD_VERSION,
  type VhdDiskType,
  type VhdFooter,
} from './types.js';

/** XAPI streams: footer copy at 0, header at 512, a zero sector, the BAT at 2048. */
export const XAPI_TABLE_OFFSET = 2048;
const LOCATOR_OFFSET = FOOTER_SIZE + HEADER_SIZE;

export interface VhdWriterOptions {
  diskType: VhdDiskType;
  virtualSize: number;
  blockSize?: number;
  /** Ascending block indexes to include. */
  blocks: readonly number[];
  /** data: blockSize bytes (the last block of a disk whose size is not a block multiple may be shorter). */
  readBlock(index: number): Promise<Buffer | { data: Buffer; bitmap?: Buffer }>;
  /** Differencing only: the parent's footer unique id, timestamp and path. */
  parent?: { uniqueId: Buffer; timestamp?: number; unicodeName?: string };
  uniqueId?: Buffer;
  timestamp?: number;
  /** Default 'caml', like XAPI. */
  creatorApp?: string;
}

export interface VhdWriter {
  length: number;
  stream: Readable;
  footer: VhdFooter;
}

/** Exact byte length of a stream in XAPI's layout. */
export function vhdStreamLength(virtualSize: number, blockSize: number, includedBlocks: number): number {
  const entries = Math.ceil(virtualSize / blockSize);
  return (
    XAPI_TABLE_OFFSET +
    batBytes(entries) +
    includedBlocks * (bitmapBytes(blockSize) + blockSize) +
    FOOTER_SIZE
  );
}

function uuidBytes(): Buffer {
  return Buffer.from(randomUUID().replaceAll('-', ''), 'hex');
}

function validate(opts: VhdWriterOptions, blockSize: number, entries: number): void {
  if (!isPowerOfTwo(blockSize) || blockSize < SECTOR_SIZE)
    throw new RangeError(`bad block size ${blockSize}`);
  if (
    !Number.isSafeInteger(opts.virtualSize) ||
    opts.virtualSize < 0 ||
    opts.virtualSize % SECTOR_SIZE !== 0
  ) {
    throw new RangeError(`virtual size ${opts.virtualSize} is not a whole number of sectors`);
  }
  let prev = -1;
  for (const i of opts.blocks) {
    if (!Number.isInteger(i) || i <= prev || i >= entries) {
      throw new RangeError(`block indexes must be ascending, unique and below ${entries} (got ${i})`);
    }
    prev = i;
  }
  if (opts.diskType === 'differencing' && !opts.parent)
    throw new TypeError('a differencing VHD needs a parent');
  if (opts.diskType === 'dynamic' && opts.parent) throw new TypeError('a dynamic VHD has no parent');
}

/** Header area (footer copy, header, locator sector, BAT), known before any block is read. */
function encodePrologue(opts: VhdWriterOptions, footer: Buffer, blockSize: number, entries: number): Buffer {
  const bm = bitmapBytes(blockSize);
  const batLen = batBytes(entries);
  const prologue = Buffer.alloc(XAPI_TABLE_OFFSET + batLen, 0);
  footer.copy(prologue, 0);
  const locators = [];
  const parent = opts.parent;
  if (parent?.unicodeName) {
    const url = Buffer.from(`file://${parent.unicodeName}`, 'utf8');
    if (url.length <= SECTOR_SIZE) {
      url.copy(prologue, LOCATOR_OFFSET);
      locators.push({
        platformCode: PLATFORM_MACX,
        dataSpace: 1,
        dataLength: url.length,
        dataOffset: LOCATOR_OFFSET,
      });
    }
  }
  encodeHeader({
    tableOffset: XAPI_TABLE_OFFSET,
    headerVersion: VHD_VERSION,
    maxTableEntries: entries,
    blockSize,
    parentUniqueId: parent?.uniqueId ?? Buffer.alloc(16),
    parentTimestamp: parent?.timestamp ?? 0,
    parentUnicodeName: parent?.unicodeName ?? '',
    parentLocators: locators,
  }).copy(prologue, FOOTER_SIZE);
  prologue.fill(0xff, XAPI_TABLE_OFFSET, XAPI_TABLE_OFFSET + batLen);
  let sector = (XAPI_TABLE_OFFSET + batLen) / SECTOR_SIZE;
  for (const i of opts.blocks) {
    prologue.writeUInt32BE(sector, XAPI_TABLE_OFFSET + 4 * i);
    sector += (bm + blockSize) / SECTOR_SIZE;
  }
  if (sector > UNUSED_BAT_ENTRY) throw new RangeError('VHD too large for 32-bit BAT entries');
  return prologue;
}

/**
 * Builds a VHD stream block by block (back-pressure: the next block is read only when the
 * consumer wants more). The length is known before the first byte.
 */
export function createVhdWriter(opts: VhdWriterOptions): VhdWriter {
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  const entries = Math.ceil(opts.virtualSize / blockSize);
  validate(opts, blockSize, entries);
  const footerFields: VhdFooter = {
    features: 2,
    version: VHD_VERSION,
    dataOffset: FOOTER_SIZE,
    timestamp: opts.timestamp ?? 0,
    creatorApp: opts.creatorApp ?? 'caml',
    creatorVersion: 1,
    creatorHostOs: 0,
    originalSize: opts.virtualSize,
    currentSize: opts.virtualSize,
    geometry: chsGeometry(opts.virtualSize),
    diskType: opts.diskType === 'differencing' ? DISK_TYPE_DIFFERENCING : DISK_TYPE_DYNAMIC,
    checksum: 0,
    uniqueId: opts.uniqueId ?? uuidBytes(),
    savedState: 0,
  };
  const footer = encodeFooter(footerFields);
  footerFields.checksum = footer.readUInt32BE(64);
  const bm = bitmapBytes(blockSize);
  const fullBitmap = Buffer.alloc(bm, 0xff);
  const length = vhdStreamLength(opts.virtualSize, blockSize, opts.blocks.length);

  async function* generate(): AsyncGenerator<Buffer> {
    yield encodePrologue(opts, footer, blockSize, entries);
    for (const index of opts.blocks) {
      const got = await opts.readBlock(index);
      const { data, bitmap } = Buffer.isBuffer(got) ? { data: got, bitmap: undefined } : got;
      yield bitmap ? padBitmap(bitmap, bm, blockSize) : fullBitmap;
      const lastLength = opts.virtualSize - index * blockSize;
      if (data.length === blockSize) {
        yield data;
      } else if (index === entries - 1 && data.length === lastLength) {
        yield data;
        yield Buffer.alloc(blockSize - data.length);
      } else {
        throw new RangeError(
          `block ${index}: readBlock returned ${data.length} bytes, expected ${blockSize}`,
        );
      }
    }
    yield footer;
  }

  return { length, stream: Readable.from(generate(), { objectMode: false }), footer: footerFields };
}

function padBitmap(bitmap: Buffer, bm: number, blockSize: number): Buffer {
  const needed = Math.ceil(blockSize / SECTOR_SIZE / 8);
  if (bitmap.length === bm) return bitmap;
  if (bitmap.length < needed || bitmap.length > bm) {
    throw new RangeError(`bitmap of ${bitmap.length} bytes; expected ${needed}..${bm}`);
  }
  const padded = Buffer.alloc(bm, 0);
  bitmap.copy(padded);
  return padded;
}
