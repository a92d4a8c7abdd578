import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createVhdWriter, type VhdWriterOptions } from '../../../functions/vhd/index.js';

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
