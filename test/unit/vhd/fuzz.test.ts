/**
 * Randomized corruption of valid streams: no crash, no hang, and a structural corruption is never
 * accepted. Block data and bitmap bytes are not covered by any checksum in VHD, so mutations there
 * are legitimately undetectable: the "never accepted" properties mutate structure bytes only.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { VhdFormatError, VhdStreamParser, VhdVerifier } from '../../../functions/vhd/index.js';
import { buildVhd, collect, type DiskSpec, diskContent, KiB, readable, writerFor } from './helpers.js';

interface Sample {
  bytes: Buffer;
  /** Byte ranges covered by checks: footer copy, header, BAT entries, trailing footer. */
  structure: Array<[number, number]>;
}

const samples: Sample[] = [];

beforeAll(async () => {
  const specs: Array<DiskSpec & { differencing?: boolean }> = [
    { virtualSize: 4 * 64 * KiB, blockSize: 64 * KiB, blocks: [0, 1, 3] },
    { virtualSize: 16 * 4 * KiB - 1024, blockSize: 4 * KiB, blocks: [2, 5, 6, 7, 15] },
    { virtualSize: 9 * 16 * KiB, blockSize: 16 * KiB, blocks: [8], differencing: true },
    { virtualSize: 6 * 64 * KiB, blockSize: 64 * KiB, blocks: [] },
    { virtualSize: 200 * 512, blockSize: 512, blocks: [0, 1, 2, 100, 199] },
  ];
  for (const spec of specs) {
    const extra = spec.differencing
      ? { diskType: 'differencing' as const, parent: { uniqueId: Buffer.alloc(16, 3), unicodeName: 'base' } }
      : {};
    const bytes = await collect(writerFor(spec, diskContent(spec), extra).stream);
    const entries = Math.ceil(spec.virtualSize / spec.blockSize);
    samples.push({
      bytes,
      structure: [
        [0, 1536],
        [2048, 2048 + 4 * entries],
        [bytes.length - 512, bytes.length],
      ],
    });
  }
});

type Outcome = 'accepted' | VhdFormatError;

/** Runs the shared parser over `bytes` cut into chunks, in reader or verifier mode. */
function parse(bytes: Buffer, cuts: number[], collectBlocks: boolean): Outcome {
  const parser = new VhdStreamParser({ collectBlocks });
  let at = 0;
  let k = 0;
  try {
    while (at < bytes.length) {
      const n = Math.max(1, cuts[k++ % cuts.length] ?? bytes.length);
      const chunk = bytes.subarray(at, at + n);
      let i = 0;
      while (i < chunk.length) {
        i = parser.feed(chunk, i);
        parser.takeBlock();
      }
      at += n;
    }
    parser.end();
    return 'accepted';
  } catch (err) {
    if (err instanceof VhdFormatError) return err;
    throw err;
  }
}

const sampleArb = () => fc.integer({ min: 0, max: 4 }).map((i) => samples[i]!);
const cutsArb = fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 5 });

function structureOffset(s: Sample, r: number): number {
  const total = s.structure.reduce((n, [a, b]) => n + b - a, 0);
  let k = Math.floor(r * total);
  for (const [a, b] of s.structure) {
    if (k < b - a) return a + k;
    k -= b - a;
  }
  throw new Error('unreachable');
}

describe('VHD fuzzing', () => {
  it('any single-byte change of a structure byte is rejected (reader and verifier modes)', () => {
    fc.assert(
      fc.property(
        sampleArb(),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 255 }),
        cutsArb,
        (s, r, x, cuts) => {
          const bytes = Buffer.from(s.bytes);
          const at = structureOffset(s, r);
          bytes[at] = bytes[at]! ^ x;
          expect(parse(bytes, cuts, true)).toBeInstanceOf(VhdFormatError);
          expect(parse(bytes, cuts, false)).toBeInstanceOf(VhdFormatError);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('every truncation is rejected', () => {
    fc.assert(
      fc.property(
        sampleArb(),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        cutsArb,
        (s, r, cuts) => {
          const bytes = s.bytes.subarray(0, Math.floor(r * s.bytes.length));
          const out = parse(bytes, cuts, true);
          expect(out).toBeInstanceOf(VhdFormatError);
          expect(parse(bytes, cuts, false)).toBeInstanceOf(VhdFormatError);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('every extension is rejected', () => {
    fc.assert(
      fc.property(
        sampleArb(),
        fc.uint8Array({ minLength: 1, maxLength: 1100 }),
        cutsArb,
        (s, extra, cuts) => {
          const bytes = Buffer.concat([s.bytes, extra]);
          const out = parse(bytes, cuts, false);
          expect(out).toBeInstanceOf(VhdFormatError);
          expect((out as VhdFormatError).code).toBe('TRAILING_BYTES');
          expect(parse(bytes, cuts, true)).toBeInstanceOf(VhdFormatError);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('arbitrary multi-byte damage, cuts and garbage: only accepted or VhdFormatError, never a crash', () => {
    fc.assert(
      fc.property(
        sampleArb(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
        fc.option(fc.nat()),
        cutsArb,
        (s, edits, cut, cuts) => {
          let bytes = Buffer.from(s.bytes);
          for (const [pos, v] of edits) bytes[pos % bytes.length] = v;
          if (cut !== null) bytes = bytes.subarray(0, cut % (bytes.length + 1));
          parse(bytes, cuts, true);
          parse(bytes, cuts, false);
        },
      ),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4000 }), cutsArb, (garbage, cuts) => {
        expect(parse(Buffer.from(garbage), cuts, true)).toBeInstanceOf(VhdFormatError);
      }),
      { numRuns: 300 },
    );
  });

  it('damaged hand-placed layouts (gaps, out-of-order blocks) never crash', () => {
    const laid = buildVhd({
      virtualSize: 8 * 4 * KiB,
      blockSize: 4 * KiB,
      tableAt: 4096,
      blocks: [
        { index: 5, at: 8192 },
        { index: 0, at: 8192 + 4608 + 1024 },
        { index: 7, at: 8192 + 2 * 4608 + 1024 },
      ],
    });
    expect(parse(laid, [333], true)).toBe('accepted');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        cutsArb,
        (e, c) => {
          const bytes = Buffer.from(laid);
          for (const [pos, v] of e) bytes[pos % bytes.length] = v;
          parse(bytes, c, true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('the stream verifier agrees with the parser on damaged streams', async () => {
    await fc.assert(
      fc.asyncProperty(
        sampleArb(),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 255 }),
        cutsArb,
        async (s, r, x, cuts) => {
          const bytes = Buffer.from(s.bytes);
          const at = structureOffset(s, r);
          bytes[at] = bytes[at]! ^ x;
          const verifier = new VhdVerifier();
          const result = collect(readable(bytes, cuts).pipe(verifier));
          await expect(result).rejects.toBeInstanceOf(VhdFormatError);
        },
      ),
      { numRuns: 200 },
    );
  });
});
