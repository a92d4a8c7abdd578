import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_HEADER_BYTES, encodeChunked } from '../../../functions/nbd/chunked.js';
import type { Extent } from '../../../functions/nbd/extents.js';

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        parts.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(parts);
}

/**
 * What vhd-tool's serve_chunked_to_raw does, written from the format description: apply each
 * {offset u64 LE, length u32 LE} + data to the target until the all-zero header.
 */
function applyChunked(body: Buffer, target: Buffer): { chunks: number; consumed: number } {
  let at = 0;
  let chunks = 0;
  for (;;) {
    const offset = Number(body.readBigUInt64LE(at));
    const length = body.readUInt32LE(at + 8);
    at += 12;
    if (offset === 0 && length === 0) return { chunks, consumed: at };
    body.copy(target, offset, at, at + length);
    at += length;
    chunks++;
  }
}

describe('encodeChunked', () => {
  it('frames extents with a known total length and reproduces the changed bytes', async () => {
    const source = randomBytes(1024 * 1024);
    const extents: Extent[] = [
      { offset: 0, length: 4096 },
      { offset: 65536, length: 300_000 },
      { offset: 1024 * 1024 - 512, length: 512 },
    ];
    const reads: Extent[] = [];
    const body = encodeChunked(
      extents,
      async (offset, length) => {
        reads.push({ offset, length });
        return source.subarray(offset, offset + length);
      },
      { maxChunkBytes: 128 * 1024 },
    );
    // 4096 → 1 chunk, 300000 → 3 chunks (131072, 131072, 37856), 512 → 1 chunk; + terminator.
    expect(body.length).toBe(4096 + 300_000 + 512 + 6 * CHUNK_HEADER_BYTES);
    const bytes = await collect(body.stream);
    expect(bytes.length).toBe(body.length);
    const target = Buffer.alloc(source.length);
    expect(applyChunked(bytes, target)).toEqual({ chunks: 5, consumed: bytes.length });
    for (const e of extents) {
      expect(
        target.subarray(e.offset, e.offset + e.length).equals(source.subarray(e.offset, e.offset + e.length)),
      ).toBe(true);
    }
    expect(reads.map((r) => r.length)).toEqual([4096, 131072, 131072, 37856, 512]);
  });

  it('encodes nothing as just the terminator, and skips empty extents', async () => {
    const body = encodeChunked([{ offset: 0, length: 0 }], () => Buffer.alloc(0));
    expect(body.length).toBe(12);
    expect((await collect(body.stream)).equals(Buffer.alloc(12))).toBe(true);
  });

  it('rejects overlapping, unordered or out-of-disk extents before reading anything', () => {
    const read = (): Buffer => {
      throw new Error('must not read');
    };
    expect(() =>
      encodeChunked(
        [
          { offset: 100, length: 10 },
          { offset: 105, length: 10 },
        ],
        read,
      ),
    ).toThrow(RangeError);
    expect(() => encodeChunked([{ offset: 4096, length: 512 }], read, { diskSize: 4096 })).toThrow(
      RangeError,
    );
    expect(() => encodeChunked([{ offset: 0, length: 1 }], read, { maxChunkBytes: 2 ** 31 })).toThrow(
      RangeError,
    );
  });

  it('fails the stream when a read returns the wrong number of bytes, or fails', async () => {
    const short = encodeChunked([{ offset: 0, length: 1024 }], () => Buffer.alloc(512));
    await expect(collect(short.stream)).rejects.toThrow(/expected 1024/);
    const failing = encodeChunked(
      [
        { offset: 0, length: 512 },
        { offset: 4096, length: 512 },
      ],
      async (offset) => {
        if (offset === 4096) throw new Error('nbd read failed');
        return Buffer.alloc(512);
      },
    );
    await expect(collect(failing.stream)).rejects.toThrow(/nbd read failed/);
  });

  it('keeps the announced length exact for any extents and chunk size', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(5000), fc.nat(3000)), { maxLength: 12 }),
        fc.integer({ min: 1, max: 4096 }),
        async (gapsAndLengths, maxChunkBytes) => {
          let at = 0;
          const extents = gapsAndLengths.map(([gap, length]) => {
            const e = { offset: at + gap, length };
            at = e.offset + length;
            return e;
          });
          const source = randomBytes(at + 1);
          const body = encodeChunked(extents, (o, l) => source.subarray(o, o + l), {
            maxChunkBytes,
            readAhead: 3,
          });
          const bytes = await collect(body.stream);
          expect(bytes.length).toBe(body.length);
          const target = Buffer.alloc(source.length);
          applyChunked(bytes, target);
          for (const e of extents) {
            expect(
              target
                .subarray(e.offset, e.offset + e.length)
                .equals(source.subarray(e.offset, e.offset + e.length)),
            ).toBe(true);
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});
