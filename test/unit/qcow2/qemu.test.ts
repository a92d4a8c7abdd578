/**
 * The codec against an independent implementation: qemu-img checks, describes, maps and compares
 * the images the writer produces, and the reader reads images qemu-img wrote.
 */
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQcow2Writer, readQcow2Stream } from '../../../functions/qcow2/index.js';
import { collect, KiB, MiB, pattern, run, tempDir } from '../vhd/helpers.js';

const TiB = 1024 * 1024 * MiB;
let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(async () => cleanup());

/** The image of `clusters` (seeded per cluster) and the same disk as a sparse raw file. */
async function writeBoth(name: string, size: number, clusters: number[], bits = 16) {
  const cs = 2 ** bits;
  const data = (i: number) => pattern(Math.min(cs, size - i * cs), i + 7);
  const w = createQcow2Writer({ virtualSize: size, clusterBits: bits, clusters, readCluster: data });
  const qcow2 = join(dir, `${name}.qcow2`);
  const raw = join(dir, `${name}.raw`);
  const out = await open(qcow2, 'w');
  let n = 0;
  for await (const chunk of w.stream) {
    await out.write(chunk);
    n += chunk.length;
  }
  await out.close();
  expect(n).toBe(w.length);
  const r = await open(raw, 'w');
  await r.truncate(size);
  for (const i of clusters) await r.write(data(i), 0, undefined, i * cs);
  await r.close();
  return { qcow2, raw };
}

async function qemuJson<T>(args: string[]): Promise<T> {
  return JSON.parse((await run('qemu-img', [...args, '--output=json'])).stdout) as T;
}

/** Byte ranges qemu-img map reports as data, merged. */
async function dataRanges(file: string): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for (const e of await qemuJson<{ start: number; length: number; data: boolean }[]>([
    'map',
    '-f',
    'qcow2',
    file,
  ])) {
    if (!e.data) continue;
    const last = out[out.length - 1];
    if (last && last[1] === e.start) last[1] = e.start + e.length;
    else out.push([e.start, e.start + e.length]);
  }
  return out;
}

describe('qemu-img accepts what the writer produces', () => {
  it.each([
    ['small, short last cluster', 3 * MiB + 512, [0, 1, 48], 16],
    ['512-byte clusters, many L2 tables and refcount blocks', 1 * MiB, [0, 1, 64, 500, 1999, 2047], 9],
    ['2 MiB clusters', 64 * MiB, [0, 31], 21],
    ['empty', 10 * MiB, [], 16],
    [
      '4 TiB sparse: data in the first, a middle and the last L2 range',
      4 * TiB,
      [0, 1, 8192 * 3000 + 5, 67108863],
      16,
    ],
  ] as const)('%s', async (name, size, clusters, bits) => {
    const { qcow2, raw } = await writeBoth(name.replace(/\W+/g, '-'), size, [...clusters], bits);
    const check = await qemuJson<{ corruptions?: number; leaks?: number; 'check-errors': number }>([
      'check',
      '-f',
      'qcow2',
      qcow2,
    ]);
    expect(check['check-errors']).toBe(0);
    expect(check.corruptions ?? 0).toBe(0);
    expect(check.leaks ?? 0).toBe(0);
    const info = await qemuJson<{ format: string; 'virtual-size': number; 'cluster-size': number }>([
      'info',
      '-f',
      'qcow2',
      qcow2,
    ]);
    expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': size, 'cluster-size': 2 ** bits });
    const cs = 2 ** bits;
    const expected: [number, number][] = [];
    for (const c of clusters) {
      const last = expected[expected.length - 1];
      const end = Math.min(size, (c + 1) * cs);
      if (last && last[1] === c * cs) last[1] = end;
      else expected.push([c * cs, end]);
    }
    expect(await dataRanges(qcow2)).toEqual(expected);
    await run('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'raw', qcow2, raw]);
  });
});

describe('the reader reads what qemu-img writes', () => {
  it('qemu-img convert raw → qcow2 (one L2 table): extents and bytes', async () => {
    const raw = join(dir, 'q.raw');
    const qcow2 = join(dir, 'q.qcow2');
    const size = 32 * MiB;
    const f = await open(raw, 'w');
    await f.truncate(size);
    await f.write(pattern(100 * KiB, 3), 0, undefined, 1 * MiB);
    await f.write(pattern(64 * KiB, 4), 0, undefined, 20 * MiB);
    await f.close();
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    const bytes = await collect((await open(qcow2)).createReadStream());
    const r = await readQcow2Stream([bytes]);
    expect(r.header.virtualSize).toBe(size);
    expect(r.extents).toEqual([
      { offset: 1 * MiB, length: 128 * KiB },
      { offset: 20 * MiB, length: 64 * KiB },
    ]);
    const back = Buffer.alloc(size);
    for await (const c of r.clusters()) c.data.copy(back, c.offset);
    const copy = join(dir, 'q.back.raw');
    await writeFile(copy, back);
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', copy, raw]);
  });
});
