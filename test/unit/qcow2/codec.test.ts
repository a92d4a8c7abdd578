/** The qcow2 codec's tables: header fields, layout arithmetic, reading back what the writer wrote, refusals. */
import { describe, expect, it } from 'vitest';
import {
  createQcow2Writer,
  decodeHeader,
  encodeHeader,
  planImage,
  type Qcow2Header,
  readQcow2Stream,
} from '../../../functions/qcow2/index.js';
import { chunked, collect, KiB, MiB, pattern } from '../vhd/helpers.js';

const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

function image(virtualSize: number, clusters: number[], clusterBits = 16) {
  const cs = 2 ** clusterBits;
  return createQcow2Writer({
    virtualSize,
    clusterBits,
    clusters,
    readCluster: (i) => pattern(Math.min(cs, virtualSize - i * cs), i + 1),
  });
}

describe('header', () => {
  const base: Omit<Qcow2Header, 'version' | 'headerLength'> = {
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: 16,
    virtualSize: 4 * TiB,
    cryptMethod: 0,
    l1Size: 8192,
    l1TableOffset: 3 * 65536,
    refcountTableOffset: 65536,
    refcountTableClusters: 1,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: 4,
    compressionType: 0,
  };

  it('round-trips every v3 field', () => {
    const b = encodeHeader(base);
    expect(b.subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
    expect(decodeHeader(b)).toEqual({ ...base, version: 3, headerLength: 112 });
  });

  it.each([
    ['magic', (b: Buffer) => b.writeUInt32BE(0x12345678, 0), 'BAD_MAGIC'],
    ['version 4', (b: Buffer) => b.writeUInt32BE(4, 4), 'UNSUPPORTED_VERSION'],
    ['cluster_bits 8', (b: Buffer) => b.writeUInt32BE(8, 20), 'BAD_HEADER'],
    ['cluster_bits 22', (b: Buffer) => b.writeUInt32BE(22, 20), 'BAD_HEADER'],
    ['encryption', (b: Buffer) => b.writeUInt32BE(1, 32), 'UNSUPPORTED_FEATURE'],
    ['corrupt bit', (b: Buffer) => b.writeBigUInt64BE(2n, 72), 'UNSUPPORTED_FEATURE'],
    ['external data file', (b: Buffer) => b.writeBigUInt64BE(4n, 72), 'UNSUPPORTED_FEATURE'],
    ['extended L2', (b: Buffer) => b.writeBigUInt64BE(16n, 72), 'UNSUPPORTED_FEATURE'],
    ['unknown incompatible bit', (b: Buffer) => b.writeBigUInt64BE(1n << 40n, 72), 'UNSUPPORTED_FEATURE'],
    ['unaligned L1', (b: Buffer) => b.writeBigUInt64BE(65536n + 8n, 40), 'BAD_HEADER'],
    ['header_length 100', (b: Buffer) => b.writeUInt32BE(100, 100), 'BAD_HEADER'],
  ] as const)('refuses %s', (_name, mutate, code) => {
    const b = encodeHeader(base);
    mutate(b);
    expect(() => decodeHeader(b)).toThrow(expect.objectContaining({ code }));
  });

  it('reads a v2 header (72 bytes, refcount_order implied 4)', () => {
    const b = encodeHeader(base).subarray(0, 72);
    b.writeUInt32BE(2, 4);
    expect(decodeHeader(b)).toMatchObject({
      version: 2,
      refcountOrder: 4,
      headerLength: 72,
      clusterBits: 16,
    });
  });
});

describe('layout', () => {
  it.each([
    // [virtual size, clusters, l1Size, L2 tables, refcount blocks, total clusters]
    ['empty 1 GiB', 1 * GiB, [], 2, 0, 1, 4],
    ['4 TiB, 3 clusters in 2 L2 ranges', 4 * TiB, [0, 1, 8192 * 5], 8192, 2, 1, 1 + 1 + 1 + 1 + 2 + 3],
    ['16 TiB', 16 * TiB, [], 32768, 0, 1, 1 + 1 + 1 + 4],
  ] as const)('%s', (_n, size, clusters, l1Size, l2, blocks, total) => {
    const p = planImage(size, 16, clusters);
    expect(p.l1Size).toBe(l1Size);
    expect(p.l2Tables.length).toBe(l2);
    expect(p.refcountBlocks).toBe(blocks);
    expect(p.totalClusters).toBe(total);
    expect(p.length).toBe(total * 65536);
    // XAPI's order: header, refcount table, refcount blocks, L1, L2, data
    expect(p.refcountTableOffset).toBe(65536);
    expect(p.refcountBlockOffset).toBeGreaterThan(p.refcountTableOffset);
    expect(p.l1TableOffset).toBeGreaterThan(p.refcountBlockOffset);
    expect(p.dataOffset).toBe(p.l2TableOffset + l2 * 65536);
  });

  it('refcount blocks count themselves (many clusters at 512-byte clusters)', () => {
    // 512-byte clusters: 256 refcounts per block, 64 blocks per table cluster
    const clusters = Array.from({ length: 2000 }, (_, i) => i);
    const p = planImage(2000 * 512, 9, clusters);
    expect(p.refcountBlocks * 256).toBeGreaterThanOrEqual(p.totalClusters);
    expect((p.refcountBlocks - 1) * 256).toBeLessThan(p.totalClusters);
  });

  it.each([
    ['unsorted', [3, 1]],
    ['duplicate', [1, 1]],
    ['outside the disk', [16]],
    ['negative', [-1]],
  ])('refuses %s clusters', (_n, clusters) => {
    expect(() => planImage(1 * MiB, 16, clusters)).toThrow(expect.objectContaining({ code: 'BAD_ARGUMENT' }));
  });
});

describe('writer → reader', () => {
  it.each([
    ['64 KiB clusters, short last cluster', 1 * MiB + 5 * KiB, [0, 3, 16], 16],
    ['512-byte clusters across L2 tables', 200 * KiB, [0, 63, 64, 65, 399], 9],
    ['2 MiB clusters', 8 * MiB, [1, 3], 21],
    ['nothing allocated', 64 * MiB, [], 16],
    ['4 TiB, sparse', 4 * TiB, [0, 1, 2, 8192 * 1000, 67108863], 16],
  ] as const)('%s', async (_n, size, clusters, bits) => {
    const w = image(size, [...clusters], bits);
    const bytes = await collect(w.stream);
    expect(bytes.length).toBe(w.length);
    const cs = 2 ** bits;
    const r = await readQcow2Stream(chunked(bytes, [7, 4096, 65537]));
    expect(r.header.virtualSize).toBe(size);
    expect(r.header.clusterBits).toBe(bits);
    const expected = clusters.map((c) => ({ offset: c * cs, length: Math.min(cs, size - c * cs) }));
    expect(r.extents.flatMap((e) => split(e.offset, e.length, cs))).toEqual(expected);
    const got: { offset: number; data: Buffer }[] = [];
    for await (const c of r.clusters()) got.push({ offset: c.offset, data: Buffer.from(c.data) });
    expect(got.map((g) => g.offset)).toEqual(expected.map((e) => e.offset));
    for (const g of got) expect(g.data.equals(pattern(g.data.length, g.offset / cs + 1))).toBe(true);
  });

  it('merges adjacent clusters into one extent and reports the data bytes', async () => {
    const w = image(1 * MiB, [2, 3, 4, 9]);
    const r = await readQcow2Stream([await collect(w.stream)]);
    expect(r.extents).toEqual([
      { offset: 2 * 65536, length: 3 * 65536 },
      { offset: 9 * 65536, length: 65536 },
    ]);
    expect(r.dataBytes).toBe(4 * 65536);
    await r.close();
  });

  it('refuses a truncated stream by name, with the offset', async () => {
    const w = image(1 * MiB, [0, 5]);
    const bytes = await collect(w.stream);
    const r = await readQcow2Stream([bytes.subarray(0, bytes.length - 100)]);
    await expect(drain(r.clusters())).rejects.toMatchObject({ code: 'TRUNCATED' });
  });

  it('refuses an L2 table placed after the data (not streamable)', async () => {
    const w = image(1 * MiB, [0]);
    const bytes = await collect(w.stream);
    const p = w.plan;
    // move the L2 table behind the data cluster: point L1 at a new cluster appended at the end
    const moved = Buffer.concat([bytes, bytes.subarray(p.l2TableOffset, p.l2TableOffset + 65536)]);
    moved.writeBigUInt64BE(BigInt(bytes.length) | (1n << 63n), p.l1TableOffset);
    await expect(readQcow2Stream([moved])).rejects.toMatchObject({ code: 'NOT_STREAMABLE' });
  });

  it('refuses compressed clusters by name', async () => {
    const w = image(1 * MiB, [1]);
    const bytes = await collect(w.stream);
    const at = w.plan.l2TableOffset + 8;
    bytes.writeBigUInt64BE(bytes.readBigUInt64BE(at) | (1n << 62n), at);
    await expect(readQcow2Stream([bytes])).rejects.toMatchObject({ code: 'UNSUPPORTED_FEATURE' });
  });

  it('reports clusters flagged "reads as zeros" as zero extents', async () => {
    const w = image(1 * MiB, [1]);
    const bytes = await collect(w.stream);
    bytes.writeBigUInt64BE(1n, w.plan.l2TableOffset + 4 * 8);
    const r = await readQcow2Stream([bytes]);
    expect(r.extents).toEqual([
      { offset: 65536, length: 65536 },
      { offset: 4 * 65536, length: 65536, zero: true },
    ]);
    expect(await drain(r.clusters())).toBe(65536);
  });
});

function split(offset: number, length: number, cs: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (let at = offset; at < offset + length; at += cs)
    out.push({ offset: at, length: Math.min(cs, offset + length - at) });
  return out;
}

async function drain(it: AsyncIterable<{ data: Buffer }>): Promise<number> {
  let n = 0;
  for await (const c of it) n += c.data.length;
  return n;
}
