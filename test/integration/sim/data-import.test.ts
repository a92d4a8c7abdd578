/** import_raw_vdi of the simulator (docs/xapi.md): VHD, raw, chunked, qcow2 into VDIs; failures via the task. */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  BLOCK,
  dir,
  download,
  MiB,
  newVdi,
  pool,
  s,
  upload,
  url,
  useDataPool,
  uuidOf,
  vmDisk,
} from './data-pool.js';

useDataPool();

describe('import_raw_vdi', () => {
  it('imports a VHD written by qemu-img (only allocated blocks), and raw', async () => {
    const raw = Buffer.alloc(8 * MiB);
    raw.fill(0x5a, MiB, MiB + 4096);
    raw.fill(0x33, 6 * MiB + 512, 7 * MiB);
    writeFileSync(join(dir, 'q.raw'), raw);
    execFileSync('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vpc',
      '-o',
      'subformat=dynamic,force_size=on',
      join(dir, 'q.raw'),
      join(dir, 'q.vhd'),
    ]);
    const vhd = readFileSync(join(dir, 'q.vhd'));
    const target = await newVdi(8 * MiB);
    const up = await upload({ vdi: target, format: 'vhd' }, vhd);
    const rec = await s.waitTask(up.task);
    expect(rec.status).toBe('success');
    expect(rec.result).toBe(`<value>${target}</value>`);
    const tu = await uuidOf(target);
    expect(pool.test.readVdi(tu, 0, 8 * MiB).equals(raw)).toBe(true);
    // raw into a second VDI gives the same canonical hash
    const t2 = await newVdi(8 * MiB);
    const up2 = await upload({ vdi: t2, format: 'raw' }, raw);
    expect((await s.waitTask(up2.task)).status).toBe('success');
    expect(pool.test.hashVdi(await uuidOf(t2))).toBe(pool.test.hashVdi(tu));
    for (const v of [target, t2]) await s.call('VDI.destroy', v);
  });

  it('writes only bitmap-set sectors of BAT-listed blocks', async () => {
    const target = await newVdi(4 * MiB);
    const tu = await uuidOf(target);
    pool.test.writeVdi(tu, 0, Buffer.alloc(4 * MiB, 0xee));
    // a dynamic VHD with block 1 present, bitmap: only sector 3 set
    const vhd = await (async () => {
      const { createVhdWriter } = await import('../../../functions/vhd/index.js');
      const bitmap = Buffer.alloc(512);
      bitmap[0] = 0x80 >> 3;
      const w = createVhdWriter({
        diskType: 'dynamic',
        virtualSize: 4 * MiB,
        blocks: [1],
        readBlock: async () => ({ data: Buffer.alloc(BLOCK, 0x11), bitmap }),
      });
      const parts: Buffer[] = [];
      for await (const c of w.stream) parts.push(c as Buffer);
      return Buffer.concat(parts);
    })();
    const up = await upload({ vdi: target, format: 'vhd' }, vhd);
    expect((await s.waitTask(up.task)).status).toBe('success');
    const got = pool.test.readVdi(tu, 0, 4 * MiB);
    const want = Buffer.alloc(4 * MiB, 0xee);
    want.fill(0x11, BLOCK + 3 * 512, BLOCK + 4 * 512);
    expect(got.equals(want)).toBe(true);
    await s.call('VDI.destroy', target);
  });

  it('xapi chunked framing for raw', async () => {
    const target = await newVdi(4 * MiB);
    const frame = (offset: number, data: Buffer): Buffer => {
      const h = Buffer.alloc(12);
      h.writeBigUInt64LE(BigInt(offset), 0);
      h.writeUInt32LE(data.length, 8);
      return Buffer.concat([h, data]);
    };
    const body = Buffer.concat([
      frame(3 * MiB, Buffer.from('third')),
      frame(10, Buffer.from('tenth')),
      frame(0, Buffer.alloc(0)),
    ]);
    const up = await upload({ vdi: target, format: 'raw', chunked: '' }, body);
    expect((await s.waitTask(up.task)).status).toBe('success');
    const tu = await uuidOf(target);
    expect(pool.test.readVdi(tu, 3 * MiB, 5).toString()).toBe('third');
    expect(pool.test.readVdi(tu, 10, 5).toString()).toBe('tenth');
    await s.call('VDI.destroy', target);
  });

  it('sends 200 before reading the body', async () => {
    const target = await newVdi(4 * MiB);
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    async function* slowBody(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(1024, 1);
      await gate;
      yield Buffer.alloc(1024, 2);
    }
    const slowTask = await s.call<string>('task.create', 'slow', '');
    const pending = request(url('/import_raw_vdi', { vdi: target, format: 'raw', task_id: slowTask }), {
      method: 'PUT',
      body: Readable.from(slowBody()),
      headers: { 'content-length': '2048' },
    });
    const r = await pending;
    expect(r.statusCode).toBe(200);
    const task = String(r.headers['task-id']);
    expect(await s.call('task.get_status', task)).toBe('pending');
    release();
    await r.body.dump();
    expect((await s.waitTask(task)).status).toBe('success');
    expect(pool.test.readVdi(await uuidOf(target), 1024, 1)[0]).toBe(2);
    await s.call('VDI.destroy', target);
  });

  it('whole blocks imported into two VDIs are their own: a write to one leaves the other as it was', async () => {
    const vhd = (await download({ vdi: vmDisk, format: 'vhd' })).body;
    const [a, b] = [await newVdi(12 * MiB), await newVdi(12 * MiB)];
    for (const v of [a, b])
      expect((await s.waitTask((await upload({ vdi: v, format: 'vhd' }, vhd)).task)).status).toBe('success');
    const want = pool.test.readVdi(await uuidOf(vmDisk), 0, 12 * MiB);
    pool.test.writeVdi(await uuidOf(a), 10 * MiB, Buffer.alloc(BLOCK, 0x77));
    expect(pool.test.readVdi(await uuidOf(b), 0, 12 * MiB).equals(want)).toBe(true);
    expect(pool.test.readVdi(await uuidOf(a), 10 * MiB, BLOCK).equals(Buffer.alloc(BLOCK, 0x77))).toBe(true);
    for (const v of [a, b]) await s.call('VDI.destroy', v);
  });

  it('a dummy SR checks every byte of a VHD and keeps none', async () => {
    const dummySr = (await s.call<string[]>('SR.get_by_name_label', 'Dummy'))[0]!;
    const target = await newVdi(12 * MiB, dummySr);
    const good = (await download({ vdi: vmDisk, format: 'vhd' })).body;
    expect((await s.waitTask((await upload({ vdi: target, format: 'vhd' }, good)).task)).status).toBe(
      'success',
    );
    expect(pool.test.readVdi(await uuidOf(target), 0, 12 * MiB).equals(Buffer.alloc(12 * MiB))).toBe(true);
    const badTrailer = Buffer.from(good);
    badTrailer[badTrailer.length - 512 + 64] = badTrailer[badTrailer.length - 512 + 64]! ^ 0xff;
    expect(
      (await s.waitTask((await upload({ vdi: target, format: 'vhd' }, badTrailer)).task)).error_info,
    ).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    await s.call('VDI.destroy', target);
  });

  it('failures arrive only through the task: bad VHD, past the end, SR full, cut stream', async () => {
    const target = await newVdi(4 * MiB);
    const good = (await download({ vdi: vmDisk, format: 'vhd' })).body;
    const corrupt = Buffer.from(good);
    corrupt[64] = corrupt[64]! ^ 0xff; // footer checksum
    const a = await upload({ vdi: target, format: 'vhd' }, corrupt);
    expect(a.status).toBe(200);
    expect((await s.waitTask(a.task)).error_info).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    // a 12 MiB disk's blocks do not fit a 4 MiB VDI
    const b = await upload({ vdi: target, format: 'vhd' }, good);
    expect((await s.waitTask(b.task)).error_info).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    const c = await upload({ vdi: target, format: 'raw' }, Buffer.alloc(4 * MiB + 512));
    expect((await s.waitTask(c.task)).error_info).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    pool.test.cutStream({ path: 'import_raw_vdi', afterBytes: 3000 });
    const task = await s.call<string>('task.create', 'cut', '');
    const cut = await request(url('/import_raw_vdi', { vdi: target, format: 'raw', task_id: task }), {
      method: 'PUT',
      body: Buffer.alloc(MiB),
      headers: { 'content-length': String(MiB) },
    })
      .then(async (r) => {
        await r.body.dump().catch(() => {});
        return r.statusCode;
      })
      .catch(() => 'socket closed');
    expect([200, 'socket closed']).toContain(cut);
    expect((await s.waitTask(task)).status).toBe('failure');
    await s.call('VDI.destroy', target);
  });

  it('refuses HTTP chunked encoding (404 + task INTERNAL_ERROR) and needs a vdi or sr', async () => {
    const target = await newVdi(4 * MiB);
    const task = await s.call<string>('task.create', 'te', '');
    async function* gen(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(10);
    }
    const r = await request(url('/import_raw_vdi', { vdi: target, task_id: task }), {
      method: 'PUT',
      body: Readable.from(gen()),
    });
    await r.body.dump();
    expect(r.statusCode).toBe(404);
    const err = await s.call<string[]>('task.get_error_info', task);
    expect(err[0]).toBe('INTERNAL_ERROR');
    expect(err[1]).toMatch(/^Cannot handle encoding: chunked/);
    const t2 = await s.call<string>('task.create', 'nothing', '');
    const none = await request(url('/import_raw_vdi', { task_id: t2 }), {
      method: 'PUT',
      body: 'x',
      headers: { 'content-length': '1' },
    });
    await none.body.dump();
    expect(none.statusCode).toBe(400);
    expect(await s.call('task.get_error_info', t2)).toEqual(['VDI_MISSING']);
    // sr_id + raw creates "Imported VDI"
    const sr = await s.call<string>('VDI.get_SR', target);
    const made = await upload({ sr_id: sr, format: 'raw' }, Buffer.alloc(2 * MiB, 3));
    const rec = await s.waitTask(made.task);
    const ref = /<value>(.*)<\/value>/.exec(String(rec.result))![1]!;
    expect(await s.call('VDI.get_name_label', ref)).toBe('Imported VDI');
    for (const v of [target, ref]) await s.call('VDI.destroy', v);
  });
});
