/**
 * qcow2 in the simulator as XCP-ng 8.3 has it: the format SM picks per VDI, the SM records'
 * supported_image_formats, export/import `format=qcow2` read and written by qemu-img, and xapi's
 * refusals (VDI_TOO_LARGE after the 200, no VHD differences of a qcow2 image).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readVhdStream } from '../../../functions/vhd/index.js';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;
const MAX_VHD = 2040 * GiB;
let pool: SimPool;
let s: TestSession;
let dir: string;
const sr: Record<string, string> = {};
let big: string; // 4 TiB disk, qcow2 (SM's choice by size)
let small: string; // 16 MiB disk asked as qcow2

/** Guest writes on the 4 TiB disk: first cluster, around the 2 TiB mark, the last MiB. */
const WRITES: [number, Buffer][] = [
  [0, Buffer.alloc(100_000, 0x11)],
  [2 * TiB - 4096, Buffer.alloc(3 * 65536, 0x22)],
  [4 * TiB - MiB, Buffer.alloc(MiB, 0x33)],
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sim-qcow2-'));
  pool = await startPool({
    name: 'qcow2',
    password: 'pw',
    srs: [
      { name_label: 'Ext', sizeBytes: 64 * TiB, type: 'ext' },
      { name_label: 'Smb', sizeBytes: 64 * TiB, type: 'smb' },
      { name_label: 'PreferQcow2', sizeBytes: 64 * TiB, type: 'lvm', preferredImageFormats: 'qcow2,vhd' },
      { name_label: 'VhdOnly', sizeBytes: 64 * TiB, type: 'nfs', preferredImageFormats: 'vhd' },
    ],
    vms: [
      {
        name_label: 'big',
        disks: [
          { sizeBytes: 4 * TiB, sr: 'Ext' },
          {
            sizeBytes: 16 * MiB,
            sr: 'Ext',
            imageFormat: 'qcow2',
            data: [{ offset: 0, length: 5 * MiB, seed: 3 }],
          },
        ],
      },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
  for (const name of ['Ext', 'Smb', 'PreferQcow2', 'VhdOnly'])
    sr[name] = (await s.call<string[]>('SR.get_by_name_label', name))[0]!;
  const vm = (await s.call<string[]>('VM.get_by_name_label', 'big'))[0];
  const vdis: string[] = [];
  for (const vbd of await s.call<string[]>('VM.get_VBDs', vm))
    vdis.push(await s.call<string>('VBD.get_VDI', vbd));
  [big, small] = vdis as [string, string];
  const uuid = await s.call<string>('VDI.get_uuid', big);
  for (const [off, data] of WRITES) pool.test.writeVdi(uuid, off, data);
});
afterAll(async () => {
  await pool?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const url = (path: string, q: Record<string, string>): string =>
  `${pool.url}${path}?${new URLSearchParams({ session_id: s.ref, ...q }).toString()}`;
const format = async (vdi: string) =>
  (await s.call<Record<string, string>>('VDI.get_sm_config', vdi))['image-format'];
const vdiRecord = (srName: string, size: number, sm_config: Record<string, string>) => ({
  SR: sr[srName],
  virtual_size: String(size),
  type: 'user',
  sharable: false,
  read_only: false,
  other_config: {},
  sm_config,
});
const create = (srName: string, size: number, sm_config: Record<string, string> = {}) =>
  s.call<string>('VDI.create', vdiRecord(srName, size, sm_config));
const createFails = (srName: string, size: number, sm_config: Record<string, string> = {}) =>
  s.failure('VDI.create', vdiRecord(srName, size, sm_config));

async function exportToFile(q: Record<string, string>, file: string) {
  const task = await s.call<string>('task.create', 'export', '');
  const r = await request(url('/export_raw_vdi', { ...q, task_id: task }));
  // read at once (these exports are a few MiB): a back-pressured undici body dies on the peer's close
  await writeFile(file, Buffer.from(await r.body.arrayBuffer()));
  return { status: r.statusCode, headers: r.headers, rec: await s.waitTask(task), task };
}

async function importFile(q: Record<string, string>, body: Buffer) {
  const task = await s.call<string>('task.create', 'import', '');
  const r = await request(url('/import_raw_vdi', { ...q, task_id: task }), {
    method: 'PUT',
    body,
    headers: { 'content-length': String(body.length) },
  });
  await r.body.dump();
  return { status: r.statusCode, rec: await s.waitTask(task) };
}

describe('image format on VDI.create (SM)', () => {
  it.each([
    ['Ext', 1 * GiB, 'vhd'],
    ['Ext', MAX_VHD, 'vhd'],
    ['Ext', MAX_VHD + 2 * MiB, 'qcow2'],
    ['PreferQcow2', 1 * GiB, 'qcow2'],
    ['Smb', 1 * GiB, 'vhd'],
  ])('%s, %d bytes → %s', async (name, size, expected) => {
    const vdi = await create(name, size);
    expect(await format(vdi)).toBe(expected);
    await s.call('VDI.destroy', vdi);
  });

  it('an explicit image-format wins over the preference', async () => {
    const vdi = await create('PreferQcow2', 1 * GiB, { 'image-format': 'vhd' });
    expect(await format(vdi)).toBe('vhd');
    await s.call('VDI.destroy', vdi);
  });

  it('refuses what the driver cannot hold, with SM errors', async () => {
    const vhdLimit = [
      'SR_BACKEND_FAILURE_79',
      '',
      'VDI Invalid size [opterr=VDI size must be between 1 MB and 2088960 MB]',
      '',
    ];
    expect(await createFails('VhdOnly', 3 * TiB)).toEqual(vhdLimit);
    expect(await createFails('Smb', 3 * TiB)).toEqual(vhdLimit);
    expect(await createFails('Ext', 3 * TiB, { 'image-format': 'vhd' })).toEqual(vhdLimit);
    expect(await createFails('Smb', 1 * GiB, { 'image-format': 'qcow2' })).toEqual([
      'SR_BACKEND_FAILURE_66',
      '',
      'Invalid VDI type [opterr=Invalid VDI type qcow2]',
      '',
    ]);
    expect((await createFails('Ext', 16382 * GiB))[0]).toBe('SR_BACKEND_FAILURE_79');
    const vhd = await create('Ext', 1 * GiB);
    expect((await s.failure('VDI.resize', vhd, String(3 * TiB)))[0]).toBe('SR_BACKEND_FAILURE_79');
    await s.call('VDI.destroy', vhd);
  });

  it('the disks of the spec: qcow2 by size and by request; a snapshot keeps its format', async () => {
    expect(await format(big)).toBe('qcow2');
    expect(await format(small)).toBe('qcow2');
    const snap = await s.async('VDI.snapshot', big, {});
    expect(await format(snap)).toBe('qcow2');
    await s.call('VDI.destroy', snap);
  });

  it('SM records list each driver type supported_image_formats', async () => {
    const sms = Object.values(await s.call<Record<string, Record<string, unknown>>>('SM.get_all_records'));
    const byType = Object.fromEntries(sms.map((r) => [r.type, r.supported_image_formats]));
    expect(byType).toEqual({
      ext: ['vhd', 'raw', 'qcow2'],
      lvm: ['vhd', 'raw', 'qcow2'],
      nfs: ['vhd', 'raw', 'qcow2'],
      smb: ['vhd', 'raw'],
    });
  });
});

describe('export_raw_vdi?format=qcow2', () => {
  it('the 4 TiB disk: qemu-img checks it, sees 4 TiB and exactly the written clusters, and reads the bytes', async () => {
    const file = join(dir, 'big.qcow2');
    const r = await exportToFile({ vdi: big, format: 'qcow2' }, file);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-qemu-disk');
    expect(r.headers['content-disposition']).toBe(
      `attachment; filename="${await s.call('VDI.get_uuid', big)}.qcow2"`,
    );
    expect(r.rec.status).toBe('success');
    await run('qemu-img', ['check', '-f', 'qcow2', file]);
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', file])).stdout);
    expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': 4 * TiB, 'cluster-size': 65536 });
    const map = JSON.parse((await run('qemu-img', ['map', '--output=json', '-f', 'qcow2', file])).stdout) as {
      start: number;
      length: number;
      data: boolean;
    }[];
    const data = map.filter((e) => e.data).map((e) => [e.start, e.start + e.length]);
    const cl = (n: number) => Math.floor(n / 65536) * 65536;
    const up = (n: number) => Math.ceil(n / 65536) * 65536;
    expect(data).toEqual(WRITES.map(([off, buf]) => [cl(off), up(off + buf.length)]));
    const raw = join(dir, 'big.raw');
    await run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', file, raw]);
    const f = await open(raw);
    for (const [off, buf] of WRITES) {
      const back = Buffer.alloc(buf.length);
      await f.read(back, 0, buf.length, off);
      expect(back.equals(buf)).toBe(true);
    }
    await f.close();
  });

  it('qemu-img compare: the qcow2 export and the raw export are the same disk', async () => {
    const q = join(dir, 'small.qcow2');
    const raw = join(dir, 'small.raw');
    await exportToFile({ vdi: small, format: 'qcow2' }, q);
    await exportToFile({ vdi: small, format: 'raw' }, raw);
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', q, raw]);
  });

  it('base=: the differing clusters only; written over a clone of the base they give the disk', async () => {
    const uuid = await s.call<string>('VDI.get_uuid', small);
    const snap = await s.async('VDI.snapshot', small, {});
    pool.test.writeVdi(uuid, 8 * MiB, Buffer.alloc(4096, 0x5a));
    pool.test.writeVdi(uuid, 65536, Buffer.alloc(65536)); // zeros over data: must travel too
    const diff = join(dir, 'diff.qcow2');
    await exportToFile({ vdi: small, format: 'qcow2', base: snap }, diff);
    const map = JSON.parse((await run('qemu-img', ['map', '--output=json', '-f', 'qcow2', diff])).stdout) as {
      start: number;
      length: number;
      data: boolean;
    }[];
    expect(map.filter((e) => e.data).map((e) => [e.start, e.length])).toEqual([
      [65536, 65536],
      [8 * MiB, 65536],
    ]);
    const clone = await s.async('VDI.clone', snap, {});
    const put = await importFile({ vdi: clone, format: 'qcow2' }, await readFile(diff));
    expect(put.status).toBe(200);
    expect(put.rec.status).toBe('success');
    expect(pool.test.hashVdi(await s.call('VDI.get_uuid', clone))).toBe(pool.test.hashVdi(uuid));
    for (const v of [clone, snap]) await s.call('VDI.destroy', v);
  });
});

describe("format=vhd of qcow2 and large disks (xapi's checks after the 200)", () => {
  it('over 2040 GiB: 200, empty body, task failed with VDI_TOO_LARGE [vdi, max]', async () => {
    const r = await exportToFile({ vdi: big, format: 'vhd' }, join(dir, 'big.vhd'));
    expect(r.status).toBe(200);
    expect((await readFile(join(dir, 'big.vhd'))).length).toBe(0);
    expect(r.rec.status).toBe('failure');
    expect(r.rec.error_info).toEqual(['VDI_TOO_LARGE', big, '2190433320960']);
  });

  it('a qcow2 disk under the limit exports as a full VHD (read as raw) but not as VHD differences', async () => {
    const file = join(dir, 'small.vhd');
    const full = await exportToFile({ vdi: small, format: 'vhd' }, file);
    expect(full.rec.status).toBe('success');
    const { info } = await readVhdStream([await readFile(file)]);
    expect(info.footer.currentSize).toBe(16 * MiB);
    const snap = await s.async('VDI.snapshot', small, {});
    const diff = await exportToFile({ vdi: small, format: 'vhd', base: snap }, join(dir, 'd.vhd'));
    expect(diff.status).toBe(200);
    expect(diff.rec.error_info).toEqual(['INTERNAL_ERROR', 'Cannot compute differences on non-VHD images']);
    await s.call('VDI.destroy', snap);
  });
});

describe('import_raw_vdi?format=qcow2', () => {
  it('writes what qemu-img made into the VDI; holes keep the VDI contents', async () => {
    const raw = join(dir, 'in.raw');
    const q = join(dir, 'in.qcow2');
    const content = Buffer.alloc(8 * MiB);
    content.fill(0x42, MiB, MiB + 300_000);
    await writeFile(raw, content);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, q]);
    const vdi = await create('Ext', 8 * MiB);
    const uuid = await s.call<string>('VDI.get_uuid', vdi);
    pool.test.writeVdi(uuid, 6 * MiB, Buffer.alloc(10, 0x99));
    const r = await importFile({ vdi, format: 'QCOW2' }, await readFile(q));
    expect(r.rec.status).toBe('success');
    expect(pool.test.readVdi(uuid, MiB, 300_000).equals(content.subarray(MiB, MiB + 300_000))).toBe(true);
    expect(pool.test.readVdi(uuid, 6 * MiB, 10).equals(Buffer.alloc(10, 0x99))).toBe(true);
    await s.call('VDI.destroy', vdi);
  });

  it('refuses an SR-level qcow2 import (400), chunked qcow2 (404), and a broken image (task VDI_IO_ERROR)', async () => {
    const bodyless = await importFile({ sr_id: sr.Ext!, format: 'qcow2' }, Buffer.alloc(512));
    expect(bodyless.status).toBe(400);
    expect(bodyless.rec.error_info).toEqual([
      'INTERNAL_ERROR',
      'Importing a QCOW2 directly into an SR not yet supported',
    ]);
    const vdi = await create('Ext', 8 * MiB);
    const chunked = await importFile({ vdi, format: 'qcow2', chunked: 'true' }, Buffer.alloc(512));
    expect(chunked.status).toBe(404);
    expect(chunked.rec.error_info).toEqual(['INTERNAL_ERROR', 'Cannot handle chunked VHD']);
    const junk = await importFile({ vdi, format: 'qcow2' }, Buffer.alloc(4096, 7));
    expect(junk.rec.error_info).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    await s.call('VDI.destroy', vdi);
  });
});
