import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  bitmapBytes,
  chsGeometry,
  createVhdWriter,
  decodeFooter,
  decodeHeader,
  encodeFooter,
  encodeHeader,
  type VhdFooter,
  type VhdHeader,
  type VhdWriterOptions,
  vhdChecksum,
} from '../../../functions/vhd/index.js';

export const run = promisify(execFile);

export const KiB = 1024;
export const MiB = 1024 * KiB;

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'xcr-vhd-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

/** Yields `buf` in chunks of the given sizes (cycled), as a network would. */
export async function* chunked(buf: Buffer, sizes: readonly number[] = [65536]): AsyncGenerator<Buffer> {
  let at = 0;
  let k = 0;
  while (at < buf.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    yield buf.subarray(at, at + n);
    at += n;
  }
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Deterministic pseudo-random bytes (xorshift over a 64 KiB period, each sector stamped with seed and index). */
export function pattern(length: number, seed: number): Buffer {
  const period = Math.min(length, 65536);
  const words = new Uint32Array(Math.ceil(period / 4));
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  const b = Buffer.allocUnsafe(length);
  const unit = Buffer.from(words.buffer, 0, period);
  for (let at = 0; at < length; at += period) unit.copy(b, at);
  for (let s = 0; s * 512 + 8 <= length; s++) {
    b.writeUInt32BE(seed >>> 0, s * 512);
    b.writeUInt32BE(s, s * 512 + 4);
  }
  return b;
}

export interface DiskSpec {
  virtualSize: number;
  blockSize: number;
  blocks: number[];
  /** Per included block: its bitmap (undefined = all ones). */
  bitmaps?: Map<number, Buffer>;
  seed?: number;
}

/** Raw content of a disk: included blocks hold pattern bytes where their bitmap is set, zeros elsewhere. */
export function diskContent(spec: DiskSpec): Buffer {
  const raw = Buffer.alloc(spec.virtualSize);
  const sectorsPerBlock = spec.blockSize / 512;
  for (const i of spec.blocks) {
    const start = i * spec.blockSize;
    const data = pattern(Math.min(spec.blockSize, spec.virtualSize - start), (spec.seed ?? 7) + i * 7919);
    const bitmap = spec.bitmaps?.get(i);
    for (let s = 0; s < sectorsPerBlock && s * 512 < data.length; s++) {
      if (bitmap && !(bitmap[s >> 3]! & (0x80 >> (s & 7)))) continue;
      data.copy(raw, start + s * 512, s * 512, s * 512 + 512);
    }
  }
  return raw;
}

/** Writes `spec` as a VHD from `raw` (reads each block from it, padding the last one like XAPI). */
export function writerFor(
  spec: DiskSpec,
  raw: Buffer,
  extra: Partial<VhdWriterOptions> = {},
): ReturnType<typeof createVhdWriter> {
  return createVhdWriter({
    diskType: 'dynamic',
    virtualSize: spec.virtualSize,
    blockSize: spec.blockSize,
    blocks: spec.blocks,
    readBlock: async (i) => {
      const data = raw.subarray(i * spec.blockSize, Math.min(raw.length, (i + 1) * spec.blockSize));
      const bitmap = spec.bitmaps?.get(i);
      return bitmap ? { data, bitmap } : data;
    },
    ...extra,
  });
}

export async function vhdBytes(spec: DiskSpec, extra: Partial<VhdWriterOptions> = {}): Promise<Buffer> {
  const w = writerFor(spec, diskContent(spec), extra);
  return collect(w.stream);
}

export function readable(buf: Buffer, sizes?: readonly number[]): Readable {
  return Readable.from(chunked(buf, sizes), { objectMode: false });
}

export interface CustomLayout {
  virtualSize: number;
  blockSize: number;
  headerAt?: number;
  tableAt?: number;
  maxTableEntries?: number;
  /** Blocks and the byte offset of their bitmap. */
  blocks: Array<{ index: number; at: number }>;
  diskType?: number;
}

/** Hand-placed VHD (any structure positions) for layouts the XAPI-style writer never produces. */
export function buildVhd(l: CustomLayout): Buffer {
  const headerAt = l.headerAt ?? 512;
  const tableAt = l.tableAt ?? headerAt + 1024;
  const entries = l.maxTableEntries ?? Math.ceil(l.virtualSize / l.blockSize);
  const bm = bitmapBytes(l.blockSize);
  let end = Math.max(headerAt + 1024, tableAt + entries * 4);
  for (const b of l.blocks) end = Math.max(end, b.at + bm + l.blockSize);
  end = Math.ceil(end / 512) * 512;
  const out = Buffer.alloc(end + 512);
  const footer = encodeFooter({
    features: 2,
    version: 0x00010000,
    dataOffset: headerAt,
    timestamp: 0,
    creatorApp: 'test',
    creatorVersion: 1,
    creatorHostOs: 0,
    originalSize: l.virtualSize,
    currentSize: l.virtualSize,
    geometry: chsGeometry(l.virtualSize),
    diskType: l.diskType ?? 3,
    uniqueId: Buffer.alloc(16, 0x42),
    savedState: 0,
  });
  footer.copy(out, 0);
  footer.copy(out, end);
  encodeHeader({
    tableOffset: tableAt,
    headerVersion: 0x00010000,
    maxTableEntries: entries,
    blockSize: l.blockSize,
    parentUniqueId: Buffer.alloc(16),
    parentTimestamp: 0,
    parentUnicodeName: '',
    parentLocators: [],
  }).copy(out, headerAt);
  out.fill(0xff, tableAt, tableAt + entries * 4);
  for (const b of l.blocks) {
    out.writeUInt32BE(b.at / 512, tableAt + 4 * b.index);
    out.fill(0xff, b.at, b.at + bm);
    pattern(l.blockSize, b.index + 1).copy(out, b.at + bm);
  }
  return out;
}

/** Re-encodes the footer (both copies) or header of a stream after editing decoded fields. */
export function editFooter(
  bytes: Buffer,
  edit: Partial<VhdFooter>,
  which: 'both' | 'copy' | 'trailer' = 'both',
) {
  const f = decodeFooter(bytes.subarray(0, 512));
  const enc = encodeFooter({ ...f, ...edit });
  if (which !== 'trailer') enc.copy(bytes, 0);
  if (which !== 'copy') enc.copy(bytes, bytes.length - 512);
}

export function editHeader(bytes: Buffer, edit: Partial<VhdHeader>, headerAt = 512): void {
  const h = decodeHeader(bytes.subarray(headerAt, headerAt + 1024));
  encodeHeader({ ...h, ...edit }).copy(bytes, headerAt);
}

export function fixHeaderChecksum(bytes: Buffer, headerAt = 512): void {
  const h = bytes.subarray(headerAt, headerAt + 1024);
  h.writeUInt32BE(vhdChecksum(h, 36), 36);
}

export function flip(bytes: Buffer, at: number, mask: number): void {
  bytes[at] = bytes[at]! ^ mask;
}
