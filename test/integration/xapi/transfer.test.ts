/**
 * VDI data paths against the simulator: raw and VHD (full and delta) round trips checked by the
 * simulator's content hash, the 302 to the host holding a local SR, and failures that only the task
 * reports (streams cut after the 200).
 */
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, type XapiOptions } from '../../../functions/xapi/index.js';
import { type SimPool, startPool } from '../../../sim/index.js';

const MiB = 1 << 20;
let pool: SimPool;
let x: Xapi;
let srcVm: string;
let srcVdi: string;
let localSr: string;
let sharedSr: string;

const opts = (extra: Partial<XapiOptions> = {}): XapiOptions => ({
  url: pool.url,
  username: pool.username,
  password: pool.password,
  allowPlainHttp: true,
  taskTimeoutMs: 20_000,
  ...extra,
});

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Tasks still alive: the client destroys what it creates, xapi what it makes for task-less requests. */
const liveTasks = () =>
  pool.test.objects('task').map(([r, t]) => `${r} ${String(t.name_label)} ${String(t.status)}`);

const uuidOf = async (vdi: string) => (await x.getRecord('VDI', vdi)).uuid;

async function newVdi(c: Xapi, sr: string, size: number): Promise<string> {
  return c.call<string>('VDI.create', {
    SR: sr,
    virtual_size: size,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: { 'xcr:test': 'transfer' },
    name_label: 'target',
  });
}

/** The VDI of a snapshot VM's first disk. */
async function snapshotDisk(c: Xapi, name: string): Promise<{ vm: string; vdi: string }> {
  const snap = await c.callAsync<string>('VM.snapshot', srcVm, name);
  const vbd = (await c.getRecord('VM', snap)).VBDs[0]!;
  return { vm: snap, vdi: (await c.getRecord('VBD', vbd)).VDI };
}

beforeAll(async () => {
  pool = await startPool({
    name: 'xfer',
    hosts: 2,
    srs: [
      { name_label: 'shared', sizeBytes: 2 ** 36, shared: true },
      { name_label: 'local1', sizeBytes: 2 ** 36, shared: false, host: 1 },
    ],
    networks: [{ name_label: 'net0' }],
    vms: [
      {
        name_label: 'src',
        disks: [
          {
            sizeBytes: 16 * MiB,
            sr: 'local1',
            data: [
              { offset: 0, length: MiB, byte: 0x11 },
              { offset: 5 * MiB + 512, length: 3 * MiB, seed: 7 },
            ],
          },
        ],
      },
    ],
  });
  x = await Xapi.connect(opts());
  const srs = [...(await x.getAllRecords('SR')).entries()];
  sharedSr = srs.find(([, s]) => s.name_label === 'shared')![0];
  localSr = srs.find(([, s]) => s.name_label === 'local1')![0];
  srcVm = [...(await x.getAllRecords('VM')).entries()].find(([, v]) => v.name_label === 'src')![0];
  const vbd = (await x.getRecord('VM', srcVm)).VBDs[0]!;
  srcVdi = (await x.getRecord('VBD', vbd)).VDI;
});
afterAll(async () => {
  await x.logout();
  await pool.close();
});

describe('VDI export/import against the simulator', () => {
  it('streams raw from a local SR on a member (302) straight into an import, same content', async () => {
    const target = await newVdi(x, sharedSr, 16 * MiB);
    const e = await x.exportVdi({ vdi: srcVdi, format: 'raw' });
    await x.importVdi({ vdi: target, format: 'raw', body: e.body, contentLength: 16 * MiB });
    await e.done;
    expect(pool.test.hashVdi(await uuidOf(target))).toBe(pool.test.hashVdi(await uuidOf(srcVdi)));
    expect(liveTasks()).toEqual([]);
  });

  it('replicates full then delta VHDs: the target matches each snapshot', async () => {
    const s1 = await snapshotDisk(x, 'base');
    const full = await x.exportVdi({ vdi: s1.vdi, format: 'vhd' });
    const fullBytes = await collect(full.body);
    await full.done;
    const replica = await newVdi(x, localSr, 16 * MiB); // local SR on host 1: the import is redirected too
    await x.importVdi({
      vdi: replica,
      format: 'vhd',
      body: (await import('node:stream')).Readable.from([fullBytes]),
      contentLength: fullBytes.length,
    });
    expect(pool.test.hashVdi(await uuidOf(replica))).toBe(pool.test.hashVdi(await uuidOf(s1.vdi)));

    pool.test.writeVdi(await uuidOf(srcVdi), 9 * MiB, Buffer.alloc(MiB, 0x5a));
    const s2 = await snapshotDisk(x, 'next');
    expect(pool.test.hashVdi(await uuidOf(s2.vdi))).not.toBe(pool.test.hashVdi(await uuidOf(s1.vdi)));
    const delta = await x.exportVdi({ vdi: s2.vdi, base: s1.vdi, format: 'vhd' });
    const deltaBytes = await collect(delta.body);
    await delta.done;
    expect(deltaBytes.length).toBeLessThan(fullBytes.length);
    const next = await x.callAsync<string>('VDI.clone', replica);
    await x.importVdi({
      vdi: next,
      format: 'vhd',
      body: (await import('node:stream')).Readable.from([deltaBytes]),
      contentLength: deltaBytes.length,
    });
    expect(pool.test.hashVdi(await uuidOf(next))).toBe(pool.test.hashVdi(await uuidOf(s2.vdi)));
    // the previous recovery point is untouched
    expect(pool.test.hashVdi(await uuidOf(replica))).toBe(pool.test.hashVdi(await uuidOf(s1.vdi)));
    for (const v of [next, replica]) await x.destroy('VDI', v);
    for (const s of [s1, s2]) {
      await x.destroy('VM', s.vm);
      await x.destroy('VDI', s.vdi);
    }
  });

  it('rejects done with the task error when the export is cut after the 200', async () => {
    pool.test.cutStream({ path: 'export_raw_vdi', afterBytes: 3 * MiB });
    try {
      const e = await x.exportVdi({ vdi: srcVdi, format: 'raw' });
      const got = await collect(e.body).catch(() => Buffer.alloc(0));
      expect(got.length).toBeLessThan(16 * MiB);
      await expect(e.done).rejects.toMatchObject({ name: 'XapiError', code: 'VDI_IO_ERROR' });
      expect(liveTasks()).toEqual([]);
    } finally {
      pool.test.clearFaults();
    }
  });

  it('rejects the import with the task error when the upload is cut', async () => {
    // The first import request is the client's redirect probe.
    pool.test.cutStream({ path: 'import_raw_vdi', afterBytes: 2 * MiB, nth: 2 });
    const target = await newVdi(x, sharedSr, 16 * MiB);
    try {
      const e = await x.exportVdi({ vdi: srcVdi, format: 'raw' });
      await expect(
        x.importVdi({ vdi: target, format: 'raw', body: e.body, contentLength: 16 * MiB }),
      ).rejects.toMatchObject({ name: 'XapiError', code: 'VDI_IO_ERROR', method: 'import_raw_vdi' });
      await e.done.catch(() => undefined);
      expect(liveTasks()).toEqual([]);
    } finally {
      pool.test.clearFaults();
      await x.destroy('VDI', target);
    }
  });

  it('round-trips over the JSON-RPC transport too', async () => {
    const j = await Xapi.connect(opts({ transport: 'jsonrpc' }));
    try {
      const target = await newVdi(j, sharedSr, 16 * MiB);
      const e = await j.exportVdi({ vdi: srcVdi, format: 'raw' });
      await j.importVdi({ vdi: target, format: 'raw', body: e.body, contentLength: 16 * MiB });
      await e.done;
      expect(pool.test.hashVdi(await uuidOf(target))).toBe(pool.test.hashVdi(await uuidOf(srcVdi)));
      await j.destroy('VDI', target);
    } finally {
      await j.logout();
    }
  });
});
