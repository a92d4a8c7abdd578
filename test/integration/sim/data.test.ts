/** HTTP data paths (docs/xapi.md): export/import raw and VHD, checked with qemu-img and the VHD reader. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyVhdToRaw, readVhdStream } from '../../../functions/vhd/index.js';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const MiB = 1024 * 1024;
const BLOCK = 2 * MiB;
let pool: SimPool;
let s: TestSession;
let dir: string;
let vmDisk: string; // VDI ref of the halted VM's disk (12 MiB)

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sim-data-'));
  pool = await startPool({
    name: 'data',
    hosts: 2,
    password: 'pw',
    srs: [
      { name_label: 'Shared', sizeBytes: 1024 * MiB, shared: true },
      { name_label: 'OnHost2', sizeBytes: 256 * MiB, host: 1 },
      { name_label: 'Dummy', sizeBytes: 1024 * MiB, type: 'dummy', shared: true },
    ],
    vms: [
      {
        name_label: 'src',
        disks: [
          {
            sizeBytes: 12 * MiB,
            data: [
              { offset: 100, length: 3 * MiB, seed: 7 },
              { offset: 6 * MiB, length: 4096, byte: 0xab },
              { offset: 10 * MiB, length: BLOCK, seed: 8 },
            ],
          },
        ],
      },
      {
        name_label: 'local',
        disks: [{ sizeBytes: 4 * MiB, sr: 'OnHost2', data: [{ offset: 0, length: 10, byte: 1 }] }],
      },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
  const vm = (await s.call<string[]>('VM.get_by_name_label', 'src'))[0];
  vmDisk = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
});
afterAll(async () => {
  await pool?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const uuidOf = (vdi: string): Promise<string> => s.call<string>('VDI.get_uuid', vdi);
const url = (path: string, q: Record<string, string>): string =>
  `${pool.url}${path}?${new URLSearchParams({ session_id: s.ref, ...q }).toString()}`;

async function download(
  q: Record<string, string>,
): Promise<{ body: Buffer; headers: Record<string, unknown>; status: number }> {
  const r = await request(url('/export_raw_vdi', q));
  const body = Buffer.from(await r.body.arrayBuffer());
  return { body, headers: r.headers, status: r.statusCode };
}

/** PUT with a client-made task (task_id), as clients must: a server-made task is gone when the transfer ends. */
async function upload(q: Record<string, string>, body: Buffer): Promise<{ status: number; task: string }> {
  const task = await s.call<string>('task.create', 'upload', '');
  const r = await request(url('/import_raw_vdi', { ...q, task_id: task }), {
    method: 'PUT',
    body,
    headers: { 'content-length': String(body.length) },
  });
  await r.body.dump();
  expect(r.headers['task-id']).toBe(task);
  return { status: r.statusCode, task };
}

const newVdi = (sizeBytes: number, sr?: string): Promise<string> =>
  (async () =>
    s.call<string>('VDI.create', {
      SR: sr ?? (await s.call<string>('VDI.get_SR', vmDisk)),
      virtual_size: String(sizeBytes),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    }))();

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
