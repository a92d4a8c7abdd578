import { Readable } from 'node:stream';
import type { Extent } from './extents.js';

/**
 * xapi's chunked raw framing for `PUT /import_raw_vdi?format=raw&chunked` (not HTTP chunking):
 * repeated {offset u64 LE, length u32 LE} + `length` data bytes written at `offset`, ended by a
 * 12-byte header of zeros (xapi `ocaml/vhd-tool/src/chunked.ml`).
 */
export const CHUNK_HEADER_BYTES = 12;
// vhd-tool reads the length as an OCaml Int32 (signed): keep it below 2^31.
const MAX_CHUNK = 0x7fffffff;

export interface ChunkedOptions {
  /** Largest data part of one chunk; longer extents are split. Default 4 MiB. */
  maxChunkBytes?: number;
  /** Chunks read ahead of the consumer, so a slow source (NBD) overlaps with the upload. Default 2. */
  readAhead?: number;
  /** When given, extents must lie inside the disk. */
  diskSize?: number;
}

export interface ChunkedBody {
  /** Exact number of bytes `stream` produces: the HTTP Content-Length (XAPI refuses HTTP chunking). */
  length: number;
  stream: Readable;
}

/**
 * Encodes `extents` (ascending, non-overlapping) whose bytes come from `read(offset, length)`.
 * The length is known before any byte is read; a short or long read fails the stream.
 */
export function encodeChunked(
  extents: readonly Extent[],
  read: (offset: number, length: number) => Promise<Buffer> | Buffer,
  opts: ChunkedOptions = {},
): ChunkedBody {
  const maxChunk = opts.maxChunkBytes ?? 4 * 1024 * 1024;
  if (!Number.isSafeInteger(maxChunk) || maxChunk <= 0 || maxChunk > MAX_CHUNK) {
    throw new RangeError('maxChunkBytes must be between 1 and 2^31-1');
  }
  const chunks = splitExtents(extents, maxChunk, opts.diskSize);
  const length = chunks.reduce((sum, c) => sum + CHUNK_HEADER_BYTES + c.length, 0) + CHUNK_HEADER_BYTES;
  const readAhead = Math.max(0, opts.readAhead ?? 2);

  async function* generate(): AsyncGenerator<Buffer> {
    const pending: Promise<Buffer>[] = [];
    let next = 0;
    const fetch = (): void => {
      const c = chunks[next++]!;
      const p = Promise.resolve().then(() => read(c.offset, c.length));
      p.catch(() => {}); // observed when its turn comes; avoid an unhandled rejection meanwhile
      pending.push(p);
    };
    for (const c of chunks) {
      while (pending.length <= readAhead && next < chunks.length) fetch();
      const data = await pending.shift()!;
      if (data.length !== c.length) {
        throw new Error(
          `chunked encoder: read at ${c.offset} returned ${data.length} bytes, expected ${c.length}`,
        );
      }
      yield header(c.offset, c.length);
      yield data;
    }
    yield Buffer.alloc(CHUNK_HEADER_BYTES);
  }

  return { length, stream: Readable.from(generate(), { objectMode: false }) };
}

function header(offset: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(CHUNK_HEADER_BYTES);
  h.writeBigUInt64LE(BigInt(offset), 0);
  h.writeUInt32LE(length, 8);
  return h;
}

function splitExtents(extents: readonly Extent[], maxChunk: number, diskSize: number | undefined): Extent[] {
  const out: Extent[] = [];
  let end = 0;
  for (const e of extents) {
    if (!Number.isSafeInteger(e.offset) || !Number.isSafeInteger(e.length) || e.offset < 0 || e.length < 0) {
      throw new RangeError(`invalid extent ${e.offset}+${e.length}`);
    }
    if (e.length === 0) continue; // a zero-length header at offset 0 would end the stream
    if (e.offset < end) throw new RangeError('extents must be ascending and must not overlap');
    end = e.offset + e.length;
    if (diskSize !== undefined && end > diskSize)
      throw new RangeError(`extent ends at ${end}, past the disk size ${diskSize}`);
    for (let at = e.offset; at < end; at += maxChunk)
      out.push({ offset: at, length: Math.min(maxChunk, end - at) });
  }
  return out;
}
