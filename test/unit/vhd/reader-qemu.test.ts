/** The reader and verifier on VHDs written by qemu (its own layout: BAT at 1536, blocks in allocation order). */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyVhdToRaw, readVhdStream, VhdVerifier } from '../../../functions/vhd/index.js';
import { MiB, readable, run, sha256, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(async () => cleanup());

async function qemuVhd(name: string, size: string, options: string, writes: string[]): Promise<string> {
  const file = join(dir, `${name}.vhd`);
  await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', options, file, size]);
  if (writes.length) await run('qemu-io', ['-f', 'vpc', ...writes.flatMap((w) => ['-c', w]), file]);
  return file;
}

async function qemuRawHash(file: string): Promise<string> {
  const out = `${file}.raw`;
  await run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', file, out]);
  return sha256(await readFile(out));
}

async function ourRawHash(file: string, chunkSizes: number[]): Promise<{ hash: string; size: number }> {
  const bytes = await readFile(file);
  const { info } = await readVhdStream(readable(bytes, chunkSizes));
  const raw = Buffer.alloc(info.virtualSize);
  await applyVhdToRaw(readable(bytes, chunkSizes), raw);
  return { hash: sha256(raw), size: info.virtualSize };
}

async function verifyAll(file: string): Promise<{ forwarded: number; totalLength: number }> {
  const verifier = new VhdVerifier();
  let forwarded = 0;
  await pipeline(
    readable(await readFile(file), [4096, 100_000, 7]),
    verifier,
    new Writable({
      write(c: Buffer, _e, cb) {
        forwarded += c.length;
        cb();
      },
    }),
  );
  return { forwarded, totalLength: (await verifier.info).totalLength };
}

describe('reader on qemu-written VHDs', () => {
  it('blocks written out of order (file order differs from BAT order), force_size', async () => {
    const file = await qemuVhd('ooo', '16M', 'subformat=dynamic,force_size=on', [
      'write -P 0xab 10M 1M',
      'write -P 0xcd 0 1M',
      'write -P 0x11 5M 512',
      'write -P 0x22 15M 1M',
    ]);
    const { info, blocks } = await readVhdStream(readable(await readFile(file)));
    expect(info.virtualSize).toBe(16 * MiB);
    expect(info.allocatedBlocks).toBe(4);
    expect(info.header.tableOffset).toBe(1536);
    const order: number[] = [];
    for await (const b of blocks()) order.push(b.index);
    expect(order).toEqual([5, 0, 2, 7]);
    expect(info.totalLength).toBe((await stat(file)).size);
    const ours = await ourRawHash(file, [65536, 3000, 1]);
    expect(ours.hash).toBe(await qemuRawHash(file));
    const v = await verifyAll(file);
    expect(v).toEqual({ forwarded: info.totalLength, totalLength: info.totalLength });
  });

  it('CHS-sized disk (no force_size): current_size is the CHS size qemu chose', async () => {
    const file = await qemuVhd('chs', '20M', 'subformat=dynamic', [
      'write -P 0x5a 3M 2M',
      'write -P 0x01 19M 512k',
    ]);
    const ours = await ourRawHash(file, [1 << 20]);
    const { stdout } = await run('qemu-img', ['info', '--output=json', '-f', 'vpc', file]);
    expect(ours.size).toBe(JSON.parse(stdout)['virtual-size']);
    expect(ours.hash).toBe(await qemuRawHash(file));
  });

  it('empty disk: no blocks, trailing footer right after the BAT', async () => {
    const file = await qemuVhd('empty', '8M', 'subformat=dynamic,force_size=on', []);
    const bytes = await readFile(file);
    const { info, blocks } = await readVhdStream(readable(bytes, [512]));
    expect(info.allocatedBlocks).toBe(0);
    let n = 0;
    for await (const _ of blocks()) n++;
    expect(n).toBe(0);
    expect(await verifyAll(file)).toEqual({ forwarded: bytes.length, totalLength: bytes.length });
  });
});
