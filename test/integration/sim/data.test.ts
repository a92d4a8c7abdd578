/** HTTP data paths (docs/xapi.md): export/import raw and VHD, checked with qemu-img and the VHD reader. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { applyVhdToRaw, readVhdStream } from '../../../functions/vhd/index.js';
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

describe('export_raw_vdi', () => {
  it('raw: the whole disk with zeros for holes; vhd: a dynamic VHD qemu-img finds identical', async () => {
    const uuid = await uuidOf(vmDisk);
    const raw = await download({ vdi: uuid, format: 'raw' });
    expect(raw.status).toBe(200);
    expect(raw.body.length).toBe(12 * MiB);
    expect(raw.body.subarray(0, 100).equals(Buffer.alloc(100))).toBe(true);
    expect(raw.body.subarray(6 * MiB, 6 * MiB + 4096).equals(Buffer.alloc(4096, 0xab))).toBe(true);
    expect(raw.headers['content-type']).toBe('application/octet-stream');
    const vhd = await download({ vdi: vmDisk, format: 'vhd' });
    expect(vhd.headers['content-type']).toBe('application/vhd');
    expect(vhd.headers['content-length']).toBeUndefined();
    // allocated blocks 0, 1 (3 MiB from offset 100), 3 (6 MiB) and 5 (10 MiB)
    expect(vhd.body.length).toBe(2048 + 512 + 4 * (512 + BLOCK) + 512);
    const info = (await readVhdStream([vhd.body])).info;
    expect(info.diskType).toBe('dynamic');
    expect(info.footer.creatorApp).toBe('caml');
    writeFileSync(join(dir, 'a.raw'), raw.body);
    writeFileSync(join(dir, 'a.vhd'), vhd.body);
    // qemu derives a 'caml' VHD's size from CHS geometry unless told to use current_size
    const vpc = `driver=vpc,force_size_calc=current_size,file.filename=${join(dir, 'a.vhd')}`;
    const out = execFileSync(
      'qemu-img',
      ['compare', '--image-opts', vpc, `driver=raw,file.filename=${join(dir, 'a.raw')}`],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    expect(out).toContain('Images are identical');
  });

  it('vhd with base: a differencing VHD of exactly the changed blocks that rebuilds the newer snapshot', async () => {
    const uuid = await uuidOf(vmDisk);
    const s1 = await s.async('VDI.snapshot', vmDisk);
    pool.test.writeVdi(uuid, 5 * MiB, Buffer.from('changed in block 2'));
    pool.test.writeVdi(uuid, 8 * MiB - 3, Buffer.from('straddles 3 and 4'));
    const s2 = await s.async('VDI.snapshot', vmDisk);
    const delta = await download({ vdi: s2, base: s1, format: 'vhd' });
    const reader = await readVhdStream([delta.body]);
    expect(reader.info.diskType).toBe('differencing');
    const blocks: number[] = [];
    for await (const b of reader.blocks()) {
      blocks.push(b.index);
      expect(b.bitmap.equals(Buffer.alloc(b.bitmap.length, 0xff))).toBe(true);
    }
    expect(blocks).toEqual([2, 3, 4]);
    const baseRaw = (await download({ vdi: s1, format: 'raw' })).body;
    const target = Buffer.from(baseRaw);
    await applyVhdToRaw([delta.body], target);
    const newer = (await download({ vdi: s2, format: 'raw' })).body;
    expect(target.equals(newer)).toBe(true);
    // the same delta imported into a copy of the base reproduces s2 inside the simulator
    const replica = await s.async('VDI.copy', s1);
    const up = await upload({ vdi: replica, format: 'vhd' }, delta.body);
    expect(up.status).toBe(200);
    expect((await s.waitTask(up.task)).status).toBe('success');
    expect(pool.test.hashVdi(await uuidOf(replica))).toBe(pool.test.hashVdi(await uuidOf(s2)));
    // nothing changed → an empty delta
    const none = await download({ vdi: s2, base: s2, format: 'vhd' });
    expect(none.body.length).toBe(2048 + 512 + 512);
    for (const v of [s1, s2, replica]) await s.call('VDI.destroy', v);
  });

  it('sends 200 and task-id before the body; the task ends success with an empty result', async () => {
    const task = await s.call<string>('task.create', 'export', '');
    const r = await request(url('/export_raw_vdi', { vdi: vmDisk, format: 'raw', task_id: task }));
    expect(r.statusCode).toBe(200);
    expect(r.headers['task-id']).toBe(task);
    expect(await s.call('task.get_status', task)).toBe('pending');
    expect((await r.body.arrayBuffer()).byteLength).toBe(12 * MiB);
    const rec = await s.waitTask(task);
    expect(rec).toMatchObject({ status: 'success', result: '' });
  });

  it('a task the server made (no task_id) is destroyed when the transfer ends', async () => {
    const before = pool.test.objects('task').length;
    const r = await request(url('/export_raw_vdi', { vdi: vmDisk, format: 'vhd' }));
    const task = String(r.headers['task-id']);
    expect(task).toMatch(/^OpaqueRef:/);
    await r.body.arrayBuffer();
    await new Promise((res) => setTimeout(res, 20));
    expect(await s.failure('task.get_status', task)).toEqual(['HANDLE_INVALID', 'task', task]);
    expect(pool.test.objects('task').length).toBe(before);
  });

  it('refuses without a session (401, task failed), unknown formats (404 + task failure)', async () => {
    const t401 = await s.call<string>('task.create', 'x', '');
    const noAuth = await request(`${pool.url}/export_raw_vdi?vdi=${vmDisk}&task_id=${t401}`);
    await noAuth.body.dump();
    expect(noAuth.statusCode).toBe(401);
    expect(noAuth.headers['www-authenticate']).toMatch(/^Basic realm=/);
    expect(await s.call('task.get_error_info', t401)).toEqual(['SESSION_AUTHENTICATION_FAILED']);
    const basic = await request(`${pool.url}/export_raw_vdi?vdi=${vmDisk}&format=vhd`, {
      headers: { authorization: `Basic ${Buffer.from('root:pw').toString('base64')}` },
    });
    await basic.body.arrayBuffer();
    expect(basic.statusCode).toBe(200);
    const task = await s.call<string>('task.create', 'x', '');
    const bad = await request(url('/export_raw_vdi', { vdi: vmDisk, format: 'qcow9', task_id: task }));
    await bad.body.dump();
    expect(bad.statusCode).toBe(404);
    expect(await s.call('task.get_error_info', task)).toEqual(['INTERNAL_ERROR', 'Unknown format qcow9']);
  });

  it('a cut stream ends the body early and fails the task with VDI_IO_ERROR', async () => {
    pool.test.cutStream({ path: 'export_raw_vdi', afterBytes: 5000 });
    const task = await s.call<string>('task.create', 'cut', '');
    const r = await download({ vdi: vmDisk, format: 'vhd', task_id: task });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(5000);
    expect(await s.call('task.get_error_info', task)).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    pool.test.clearFaults();
  });

  it('throttles the data path', async () => {
    pool.test.throttle(32 * MiB);
    try {
      const t0 = Date.now();
      const r = await download({ vdi: vmDisk, format: 'raw' });
      expect(r.body.length).toBe(12 * MiB);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(330);
    } finally {
      pool.test.throttle(undefined);
    }
  });

  it('302 to the host holding a local SR, with the same path and query', async () => {
    const vm = (await s.call<string[]>('VM.get_by_name_label', 'local'))[0];
    const vdi = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
    const r = await request(url('/export_raw_vdi', { vdi, format: 'raw' }));
    await r.body.dump();
    expect(r.statusCode).toBe(302);
    const loc = new URL(String(r.headers.location));
    expect(`${loc.host}`).toBe(pool.hosts[1]!.address);
    expect(loc.pathname).toBe('/export_raw_vdi');
    expect(loc.searchParams.get('vdi')).toBe(vdi);
    const there = await request(String(r.headers.location));
    const body = Buffer.from(await there.body.arrayBuffer());
    expect(there.statusCode).toBe(200);
    expect(body.subarray(0, 11)).toEqual(Buffer.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]));
    const put = await request(url('/import_raw_vdi', { vdi }), {
      method: 'PUT',
      body: '',
      headers: { 'content-length': '0' },
    });
    await put.body.dump();
    expect(put.statusCode).toBe(302);
  });
});

describe('HTTP routing (longest path prefix, as xapi)', () => {
  it('serves the slashed paths Xen Orchestra uses: GET /export_raw_vdi/ and PUT /import_raw_vdi/', async () => {
    const raw = await request(url('/export_raw_vdi/', { vdi: vmDisk, format: 'raw' }));
    expect(raw.statusCode).toBe(200);
    const body = Buffer.from(await raw.body.arrayBuffer());
    expect(body.equals(pool.test.readVdi(await uuidOf(vmDisk), 0, 12 * MiB))).toBe(true);
    const target = await newVdi(4 * MiB);
    const task = await s.call<string>('task.create', 'upload', '');
    const data = Buffer.alloc(4 * MiB, 0x42);
    const put = await request(url('/import_raw_vdi/', { vdi: target, format: 'raw', task_id: task }), {
      method: 'PUT',
      body: data,
      headers: { 'content-length': String(data.length) },
    });
    await put.body.dump();
    expect(put.statusCode).toBe(200);
    expect((await s.waitTask(task)).status).toBe('success');
    expect(pool.test.readVdi(await uuidOf(target), 0, 4 * MiB).equals(data)).toBe(true);
    await s.call('VDI.destroy', target);
  });

  it('answers 403 to a PUT no handler prefixes, 501 to a method with no handlers, 404 to unknown GETs', async () => {
    const put = await request(url('/export_raw_vdi', { vdi: vmDisk }), { method: 'PUT', body: 'x' });
    await put.body.dump();
    expect(put.statusCode).toBe(403);
    const del = await request(url('/export_raw_vdi', { vdi: vmDisk }), { method: 'DELETE' });
    await del.body.dump();
    expect(del.statusCode).toBe(501);
    const get = await request(url('/nothing-here', {}));
    await get.body.dump();
    expect(get.statusCode).toBe(404);
  });
});
