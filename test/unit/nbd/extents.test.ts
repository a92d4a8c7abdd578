import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  alignExtents,
  batchExtents,
  CBT_BLOCK_SIZE,
  coalesceExtents,
  decodeCbtBitmap,
  totalLength,
} from '../../../functions/nbd/extents.js';

const K64 = CBT_BLOCK_SIZE;

/** Encodes a set of changed blocks the way SM does: bit i in byte i/8 under mask 0x80 >> i%8. */
function bitmap(blocks: Iterable<number>, nbits: number): string {
  const bytes = Buffer.alloc(Math.ceil(nbits / 8));
  for (const i of blocks) bytes[i >> 3]! |= 0x80 >> (i & 7);
  return bytes.toString('base64');
}

describe('decodeCbtBitmap', () => {
  it('reads bits most significant first, 64 KiB per bit', () => {
    expect(decodeCbtBitmap(Buffer.from([0x80]).toString('base64'))).toEqual([{ offset: 0, length: K64 }]);
    expect(decodeCbtBitmap(Buffer.from([0x01]).toString('base64'))).toEqual([
      { offset: 7 * K64, length: K64 },
    ]);
    // 1100 0000 | 0000 0001 | 1000 0000 → blocks 0,1 and 15,16 (the run crosses a byte boundary)
    expect(decodeCbtBitmap(Buffer.from([0xc0, 0x01, 0x80]).toString('base64'))).toEqual([
      { offset: 0, length: 2 * K64 },
      { offset: 15 * K64, length: 2 * K64 },
    ]);
    expect(decodeCbtBitmap(Buffer.from([0xff, 0xff, 0x00, 0xff]).toString('base64'))).toEqual([
      { offset: 0, length: 16 * K64 },
      { offset: 24 * K64, length: 8 * K64 },
    ]);
    expect(decodeCbtBitmap('')).toEqual([]);
    expect(decodeCbtBitmap('AAAA')).toEqual([]);
  });

  it('clips the last block to the disk and rejects bits past its end', () => {
    const size = 2 * K64 + 4096; // 3 bits used, the last one partial
    expect(decodeCbtBitmap(bitmap([2], 8), { virtualSize: size })).toEqual([
      { offset: 2 * K64, length: 4096 },
    ]);
    expect(() => decodeCbtBitmap(bitmap([3], 8), { virtualSize: size })).toThrow(RangeError);
  });

  it('rejects text that is not base64', () => {
    expect(() => decodeCbtBitmap('not base64!')).toThrow(/base64/);
  });

  it('round-trips any set of changed blocks into sorted, coalesced extents', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 600 })
          .chain((n) => fc.tuple(fc.constant(n), fc.uniqueArray(fc.nat(n - 1)))),
        ([n, blocks]) => {
          const size = n * K64 - 512;
          const extents = decodeCbtBitmap(bitmap(blocks, n), { virtualSize: size });
          const covered = new Set<number>();
          for (const [i, e] of extents.entries()) {
            expect(e.offset % K64).toBe(0);
            const next = extents[i + 1];
            if (next) expect(next.offset).toBeGreaterThan(e.offset + e.length); // coalesced: a gap between
            for (let b = e.offset / K64; b * K64 < e.offset + e.length; b++) covered.add(b);
          }
          expect([...covered].sort((a, b) => a - b)).toEqual([...blocks].sort((a, b) => a - b));
          expect(totalLength(extents)).toBe(blocks.length * K64 - (blocks.includes(n - 1) ? 512 : 0));
        },
      ),
    );
  });
});

describe('coalesceExtents / alignExtents', () => {
  it('merges touching and overlapping extents and drops empty ones', () => {
    expect(
      coalesceExtents([
        { offset: 100, length: 50 },
        { offset: 0, length: 100 },
        { offset: 120, length: 10 },
        { offset: 300, length: 0 },
        { offset: 400, length: 1 },
      ]),
    ).toEqual([
      { offset: 0, length: 150 },
      { offset: 400, length: 1 },
    ]);
  });

  it('widens to the granularity and clips to the disk', () => {
    const MiB2 = 2 * 1024 * 1024;
    expect(
      alignExtents(
        [
          { offset: K64, length: K64 },
          { offset: 31 * K64, length: 2 * K64 },
          { offset: 5 * MiB2 + 1, length: 10 },
        ],
        MiB2,
        5 * MiB2 + 4096,
      ),
    ).toEqual([
      { offset: 0, length: 2 * MiB2 },
      { offset: 5 * MiB2, length: 4096 },
    ]);
  });
});

describe('batchExtents', () => {
  it('cuts extents into batches of bounded size, in order, losing and duplicating nothing', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(1000), fc.integer({ min: 1, max: 5000 })), { maxLength: 20 }),
        fc.integer({ min: 1, max: 6000 }),
        (gapsAndLengths, maxBytes) => {
          let at = 0;
          const extents = gapsAndLengths.map(([gap, length]) => {
            const e = { offset: at + gap, length };
            at = e.offset + length;
            return e;
          });
          const batches = batchExtents(extents, maxBytes);
          for (const [i, b] of batches.entries()) {
            expect(totalLength(b)).toBeLessThanOrEqual(maxBytes);
            if (i < batches.length - 1) expect(totalLength(b)).toBe(maxBytes);
          }
          expect(coalesceExtents(batches.flat())).toEqual(coalesceExtents(extents));
          expect(totalLength(batches.flat())).toBe(totalLength(extents));
        },
      ),
    );
  });

  it('gives no batch for no extents', () => {
    expect(batchExtents([], 10)).toEqual([]);
    expect(() => batchExtents([], 0)).toThrow(RangeError);
  });
});
