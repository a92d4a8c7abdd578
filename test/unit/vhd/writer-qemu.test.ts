/**
 * The writer's output checked by an independent implementation (qemu's `vpc` driver).
 * qemu derives the virtual size of a VHD whose creator is not one it knows from the CHS geometry
 * (cylinders × heads × sectors × 512), not from current_size: for 'caml' (XAPI's creator) it reports
 * the CHS size, which is below current_size unless the size is CHS-exact. The runtime option
 * `force_size_calc=current_size` makes it use current_size, as XAPI and blktap do. qemu also ignores
 * sector bitmaps when reading (an allocated block reads as all data), so partial-bitmap cases keep
 * zeros in unset sectors for the content comparison.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chsGeometry, decodeFooter, readVhdStream } from '../../../functions/vhd/index.js';
import { collect, type DiskSpec, diskContent, KiB, MiB, run, tempDir, writerFor } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(async () => cleanup());

const currentSizeOpts = (file: string) => `driver=vpc,force_size_calc=current_size,file.filename=${file}`;

async function writeCase(name: string, spec: DiskSpec) {
  const raw = diskContent(spec);
  const w = writerFor(spec, raw);
  const bytes = await collect(w.stream);
  expect(bytes.length).toBe(w.length);
  const vhd = join(dir, `${name}.vhd`);
  const rawFile = join(dir, `${name}.raw`);
  await writeFile(vhd, bytes);
  await writeFile(rawFile, raw);
  return { vhd, rawFile, raw, bytes };
}

async function qemuInfo(args: string[]): Promise<{ 'virtual-size': number; format: string }> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', ...args]);
  return JSON.parse(stdout);
}

/** Allocated byte ranges ("data": true) reported by qemu-img map, merged. */
async function qemuDataRanges(args: string[]): Promise<Array<[number, number]>> {
  const { stdout } = await run('qemu-img', ['map', '--output=json', ...args]);
  const ranges: Array<[number, number]> = [];
  for (const e of JSON.parse(stdout) as Array<{ start: number; length: number; data: boolean }>) {
    if (!e.data) continue;
    const last = ranges[ranges.length - 1];
    if (last && last[1] === e.start) last[1] = e.start + e.length;
    else ranges.push([e.start, e.start + e.length]);
  }
  return ranges;
}

function expectedRanges(spec: DiskSpec, size: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (const i of spec.blocks) {
    const start = i * spec.blockSize;
    if (start >= size) continue;
    const end = Math.min(size, start + spec.blockSize);
    const last = ranges[ranges.length - 1];
    if (last && last[1] === start) last[1] = end;
    else ranges.push([start, end]);
  }
  return ranges;
}

async function compareExit(args: string[]): Promise<number> {
  try {
    await run('qemu-img', ['compare', ...args]);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

describe('VHD writer checked by qemu-img', () => {
  it('size not a multiple of 2 MiB: qemu reads current_size when asked, CHS size by default', async () => {
    const spec: DiskSpec = { virtualSize: 10 * MiB + 7 * 512, blockSize: 2 * MiB, blocks: [0, 2, 5] };
    const { vhd, rawFile } = await writeCase('odd', spec);
    const g = chsGeometry(spec.virtualSize);
    const chsSize = g.cylinders * g.heads * g.sectorsPerTrack * 512;
    expect(chsSize).toBeLessThan(spec.virtualSize);
    expect((await qemuInfo(['-f', 'vpc', vhd]))['virtual-size']).toBe(chsSize);
    const info = await qemuInfo(['--image-opts', currentSizeOpts(vhd)]);
    expect(info['virtual-size']).toBe(spec.virtualSize);
    expect(await qemuDataRanges(['--image-opts', currentSizeOpts(vhd)])).toEqual(
      expectedRanges(spec, spec.virtualSize),
    );
    expect(
      await compareExit(['--image-opts', currentSizeOpts(vhd), `driver=raw,file.filename=${rawFile}`]),
    ).toBe(0);
  });

  it('CHS-exact size (301 cylinders × 4 heads × 17 sectors) reads identically with plain -f vpc', async () => {
    const size = 10479616;
    const g = chsGeometry(size);
    expect(g.cylinders * g.heads * g.sectorsPerTrack * 512).toBe(size);
    const spec: DiskSpec = { virtualSize: size, blockSize: 2 * MiB, blocks: [1, 2, 4] };
    const { vhd, rawFile } = await writeCase('chs', spec);
    expect((await qemuInfo(['-f', 'vpc', vhd]))['virtual-size']).toBe(size);
    expect(await qemuDataRanges(['-f', 'vpc', vhd])).toEqual(expectedRanges(spec, size));
    expect(await compareExit(['-f', 'vpc', '-F', 'raw', vhd, rawFile])).toBe(0);
  });

  it('a mismatching raw image is reported different (the oracle is not blind)', async () => {
    const spec: DiskSpec = { virtualSize: 10479616, blockSize: 2 * MiB, blocks: [3] };
    const { vhd, raw } = await writeCase('neg', spec);
    raw[3 * 2 * MiB + 100] = raw[3 * 2 * MiB + 100]! ^ 1;
    const other = join(dir, 'neg-other.raw');
    await writeFile(other, raw);
    expect(await compareExit(['-f', 'vpc', '-F', 'raw', vhd, other])).toBe(1);
  });

  it('64 KiB blocks, partial bitmaps, last partial block', async () => {
    const bitmaps = new Map<number, Buffer>();
    const bm = Buffer.alloc(512);
    bm[0] = 0b1011_0000;
    bm[5] = 0xff;
    bm[15] = 0x01;
    bitmaps.set(4, bm);
    const spec: DiskSpec = {
      virtualSize: 1 * MiB + 40 * KiB,
      blockSize: 64 * KiB,
      blocks: [0, 4, 9, 16],
      bitmaps,
    };
    const { vhd, rawFile, bytes } = await writeCase('small', spec);
    const info = await qemuInfo(['--image-opts', currentSizeOpts(vhd)]);
    expect(info['virtual-size']).toBe(spec.virtualSize);
    expect(
      await compareExit(['--image-opts', currentSizeOpts(vhd), `driver=raw,file.filename=${rawFile}`]),
    ).toBe(0);
    const { info: ours, blocks } = await readVhdStream([bytes]);
    expect(ours.blockSize).toBe(64 * KiB);
    const seen = new Map<number, Buffer>();
    for await (const b of blocks()) seen.set(b.index, Buffer.from(b.bitmap));
    expect([...seen.keys()]).toEqual(spec.blocks);
    expect(seen.get(4)).toEqual(bm);
    expect(seen.get(0)).toEqual(Buffer.alloc(512, 0xff));
  });

  it('differencing VHD opens in qemu (which ignores the parent) with the parent uuid in the header', async () => {
    const spec: DiskSpec = { virtualSize: 8 * MiB, blockSize: 2 * MiB, blocks: [2] };
    const parentId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const raw = diskContent(spec);
    const w = writerFor(spec, raw, {
      diskType: 'differencing',
      parent: { uniqueId: parentId, timestamp: 1234, unicodeName: '/var/run/sr-mount/x/parent.vhd' },
    });
    const bytes = await collect(w.stream);
    const vhd = join(dir, 'diff.vhd');
    await writeFile(vhd, bytes);
    expect((await qemuInfo(['--image-opts', currentSizeOpts(vhd)]))['virtual-size']).toBe(8 * MiB);
    const { info } = await readVhdStream([bytes]);
    expect(info.diskType).toBe('differencing');
    expect(info.header.parentUniqueId).toEqual(parentId);
    expect(info.header.parentTimestamp).toBe(1234);
    expect(info.header.parentUnicodeName).toBe('/var/run/sr-mount/x/parent.vhd');
    expect(decodeFooter(bytes.subarray(0, 512)).diskType).toBe(4);
  });

  it('footer fields follow XAPI: features 2, version 1.0, data offset 512, creator caml, sizes equal', async () => {
    const spec: DiskSpec = { virtualSize: 6 * MiB, blockSize: 2 * MiB, blocks: [] };
    const w = writerFor(spec, diskContent(spec), { timestamp: 42 });
    const bytes = await collect(w.stream);
    const f = decodeFooter(bytes.subarray(0, 512));
    expect(f).toMatchObject({
      features: 2,
      version: 0x00010000,
      dataOffset: 512,
      timestamp: 42,
      creatorApp: 'caml',
      originalSize: 6 * MiB,
      currentSize: 6 * MiB,
      diskType: 3,
      savedState: 0,
    });
    expect(f.uniqueId[6]! >> 4).toBe(4);
    expect(bytes.subarray(-512)).toEqual(bytes.subarray(0, 512));
    expect(bytes.length).toBe(2048 + 512 + 512);
    expect(bytes.readBigUInt64BE(512 + 16)).toBe(2048n);
  });
});

describe('chsGeometry agrees with qemu-img create', () => {
  const sizes = [33 * MiB + 512, 500 * MiB + 1536, 40 * 1024 * MiB, 200 * 1024 * MiB];
  it.each(sizes)('size %d', async (size) => {
    const file = join(dir, `geo-${size}.vhd`);
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', file, String(size)]);
    const { stdout } = await run('head', ['-c', '512', file], { encoding: 'buffer' });
    const f = decodeFooter(stdout as unknown as Buffer);
    const chs = f.geometry.cylinders * f.geometry.heads * f.geometry.sectorsPerTrack * 512;
    expect(chsGeometry(chs)).toEqual(f.geometry);
    expect(chs).toBeGreaterThanOrEqual(Math.min(size, 65535 * 16 * 255 * 512));
  });
});
