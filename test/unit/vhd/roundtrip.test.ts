/** Property tests: whatever the writer produces, the reader and verifier give back exactly. */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyVhdToRaw,
  bitmapBytes,
  readVhdStream,
  VhdVerifier,
  vhdStreamLength,
} from '../../../functions/vhd/index.js';
import { collect, type DiskSpec, diskContent, KiB, pattern, readable, writerFor } from './helpers.js';

const specArb: fc.Arbitrary<DiskSpec & { chunks: number[] }> = fc
  .record({
    blockSize: fc.constantFrom(512, 4 * KiB, 16 * KiB, 64 * KiB),
    blockCount: fc.integer({ min: 0, max: 16 }),
    tailSectors: fc.integer({ min: 0, max: 127 }),
    // One large chunk size keeps the stream short in chunks; the others may split anywhere.
    chunks: fc
      .tuple(
        fc.integer({ min: 4096, max: 70_000 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 3 }),
      )
      .map(([big, rest]) => [big, ...rest]),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  .chain(({ blockSize, blockCount, tailSectors, chunks, seed }) => {
    const tail = Math.min(tailSectors * 512, blockSize - 512);
    const virtualSize = blockCount * blockSize + (blockCount === 0 || tail > 0 ? Math.max(tail, 512) : 0);
    const entries = Math.ceil(virtualSize / blockSize);
    const bm = Math.ceil(blockSize / 512 / 8);
    return fc
      .record({
        blocks: fc.subarray([...Array(entries).keys()]),
        partial: fc.array(fc.uint8Array({ minLength: bm, maxLength: bm }), { maxLength: entries }),
      })
      .map(({ blocks, partial }) => {
        const bitmaps = new Map<number, Buffer>();
        partial.forEach((b, k) => {
          const i = blocks[k];
          if (i !== undefined && k % 2 === 0) bitmaps.set(i, Buffer.from(b));
        });
        return { virtualSize, blockSize, blocks, bitmaps, seed, chunks };
      });
  });

async function verifyBytes(bytes: Buffer, chunks: number[]) {
  const verifier = new VhdVerifier();
  const out: Buffer[] = [];
  await pipeline(
    readable(bytes, chunks),
    verifier,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return { out: Buffer.concat(out), info: await verifier.info, stats: verifier.stats };
}

describe('VHD round trip', () => {
  it('reader returns the written blocks, bitmaps and content; verifier forwards the exact bytes', async () => {
    await fc.assert(
      fc.asyncProperty(specArb, fc.boolean(), async (spec, differencing) => {
        const raw = diskContent(spec);
        const parent = { uniqueId: pattern(16, spec.seed ?? 1), timestamp: 5, unicodeName: 'p.vhd' };
        const w = writerFor(spec, raw, differencing ? { diskType: 'differencing', parent } : {});
        const bytes = await collect(w.stream);
        expect(bytes.length).toBe(w.length);
        expect(w.length).toBe(vhdStreamLength(spec.virtualSize, spec.blockSize, spec.blocks.length));

        const { info, blocks } = await readVhdStream(readable(bytes, spec.chunks));
        expect(info).toMatchObject({
          diskType: differencing ? 'differencing' : 'dynamic',
          virtualSize: spec.virtualSize,
          blockSize: spec.blockSize,
          allocatedBlocks: spec.blocks.length,
          totalLength: bytes.length,
        });
        const bm = bitmapBytes(spec.blockSize);
        const seen: number[] = [];
        for await (const b of blocks()) {
          seen.push(b.index);
          expect(b.data.length).toBe(spec.blockSize);
          const expectedData = Buffer.alloc(spec.blockSize);
          raw.copy(expectedData, 0, b.index * spec.blockSize, (b.index + 1) * spec.blockSize);
          expect(b.data.equals(expectedData)).toBe(true);
          const given = spec.bitmaps?.get(b.index);
          const expectedBitmap = Buffer.alloc(bm, given ? 0 : 0xff);
          given?.copy(expectedBitmap);
          expect(b.bitmap.equals(expectedBitmap)).toBe(true);
        }
        expect(seen).toEqual(spec.blocks);

        const applied = Buffer.alloc(spec.virtualSize);
        await applyVhdToRaw(readable(bytes, spec.chunks), applied);
        expect(applied.equals(raw)).toBe(true);

        const v = await verifyBytes(bytes, spec.chunks);
        expect(v.out.equals(bytes)).toBe(true);
        expect(v.stats).toEqual({ bytes: bytes.length, blocks: spec.blocks.length });
        expect(v.info.totalLength).toBe(bytes.length);
      }),
      { numRuns: 100 },
    );
  });

  it('a differencing VHD applied onto its parent gives the child (only bitmap-set sectors change)', async () => {
    await fc.assert(
      fc.asyncProperty(specArb, async (spec) => {
        const parentRaw = pattern(spec.virtualSize, 99);
        const childRaw = Buffer.from(parentRaw);
        const delta = diskContent(spec);
        const sectors = spec.blockSize / 512;
        for (const i of spec.blocks) {
          const bitmap = spec.bitmaps?.get(i);
          for (let s = 0; s < sectors; s++) {
            const at = i * spec.blockSize + s * 512;
            if (at >= spec.virtualSize) break;
            if (bitmap && !(bitmap[s >> 3]! & (0x80 >> (s & 7)))) continue;
            delta.copy(childRaw, at, at, at + 512);
          }
        }
        const w = writerFor(spec, delta, {
          diskType: 'differencing',
          parent: { uniqueId: Buffer.alloc(16, 1) },
        });
        const target = Buffer.from(parentRaw);
        await applyVhdToRaw(w.stream, target);
        expect(target.equals(childRaw)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it('verifier resolves info before forwarding a byte, and holds the trailing footer until the end', async () => {
    const spec: DiskSpec = { virtualSize: 4 * 64 * KiB, blockSize: 64 * KiB, blocks: [0, 3] };
    const bytes = await collect(writerFor(spec, diskContent(spec)).stream);
    const verifier = new VhdVerifier();
    let resolved = false;
    verifier.info.then(() => {
      resolved = true;
    });
    const tick = () => new Promise((r) => setImmediate(r));
    verifier.write(bytes.subarray(0, 1000));
    verifier.write(bytes.subarray(1000, 2060));
    await tick();
    expect(resolved).toBe(false);
    expect(verifier.readableLength).toBe(0);
    verifier.write(bytes.subarray(2060));
    const info = await verifier.info;
    expect(info.totalLength).toBe(bytes.length);
    await tick();
    expect(verifier.readableLength).toBe(bytes.length - 512);
    verifier.end();
    const out = await collect(verifier);
    expect(out.equals(bytes)).toBe(true);
  });

  it('writer rejects bad input up front', () => {
    const base = { diskType: 'dynamic' as const, virtualSize: 8 * KiB * 64, blockSize: 64 * KiB };
    const readBlock = async () => Buffer.alloc(64 * KiB);
    expect(() => writerFor({ ...base, blocks: [2, 1] }, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => writerFor({ ...base, blocks: [8] }, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => writerFor({ ...base, blockSize: 3000, blocks: [] }, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => writerFor({ ...base, virtualSize: 1000, blocks: [] }, Buffer.alloc(0))).toThrow(RangeError);
    expect(() => writerFor({ ...base, blocks: [] }, Buffer.alloc(0), { diskType: 'differencing' })).toThrow(
      TypeError,
    );
    expect(readBlock).toBeTypeOf('function');
  });

  it('writer fails the stream when readBlock returns a wrong-sized block', async () => {
    const spec: DiskSpec = { virtualSize: 4 * 64 * KiB, blockSize: 64 * KiB, blocks: [1] };
    const w = writerFor(spec, Buffer.alloc(100));
    await expect(collect(w.stream)).rejects.toThrow(/expected 65536/);
  });
});
