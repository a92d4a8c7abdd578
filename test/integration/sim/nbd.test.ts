/** VDI.get_nbd_info wired to the xapi-nbd-like server, read by libnbd's nbdcopy (an independent client). */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const MiB = 1024 * 1024;
let pool: SimPool;
let s: TestSession;
const dir = mkdtempSync(join(tmpdir(), 'sim-nbd-'));
// async: the NBD server runs in this process
const run = promisify(execFile);

beforeAll(async () => {
  pool = await startPool({
    name: 'nbd',
    password: 'pw',
    srs: [{ name_label: 'Local', sizeBytes: 256 * MiB }],
    networks: [{ name_label: 'mgmt' }],
    vms: [
      { name_label: 'vm', disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 1000, length: MiB, seed: 9 }] }] },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
});
afterAll(async () => {
  await pool?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('no NBD purpose → no records; insecure_nbd → records whose export nbdcopy reads byte for byte', async () => {
  const vm = (await s.call<string[]>('VM.get_by_name_label', 'vm'))[0];
  const vdi = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
  const uuid = await s.call<string>('VDI.get_uuid', vdi);
  expect(await s.call('VDI.get_nbd_info', vdi)).toEqual([]);
  const [net] = await s.call<string[]>('network.get_by_name_label', 'mgmt');
  await s.call('network.add_purpose', net, 'insecure_nbd');
  const [info, ...more] = await s.call<Record<string, string>[]>('VDI.get_nbd_info', vdi);
  expect(more).toEqual([]);
  expect(info).toMatchObject({ address: '127.0.0.1', exportname: `/${uuid}?session_id=${s.ref}`, cert: '' });
  expect(Number(info!.port)).toBeGreaterThan(0);
  const out = join(dir, 'disk.raw');
  const uri = `nbd://127.0.0.1:${info!.port}/${encodeURIComponent(info!.exportname!)}`;
  await run('nbdcopy', [uri, out], { timeout: 20_000 });
  expect(readFileSync(out).equals(pool.test.readVdi(uuid, 0, 4 * MiB))).toBe(true);
  // a session that is gone cannot open the export
  const gone = await TestSession.login(pool.url, 'root', 'pw');
  const [rec] = await gone.call<Record<string, string>[]>('VDI.get_nbd_info', vdi);
  await gone.call('session.logout');
  await expect(
    run('nbdinfo', [`nbd://127.0.0.1:${rec!.port}/${encodeURIComponent(rec!.exportname!)}`], {
      timeout: 20_000,
    }),
  ).rejects.toThrow();
  // both purposes at once: xapi-nbd refuses, so no records
  await s.call('network.add_purpose', net, 'nbd');
  expect(await s.call('VDI.get_nbd_info', vdi)).toEqual([]);
});

it('cutStream on nbd: the nth connection to read (and count-1 after it) drops inside a read reply after afterBytes', async () => {
  const vm = (await s.call<string[]>('VM.get_by_name_label', 'vm'))[0];
  const vdi = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
  const uuid = await s.call<string>('VDI.get_uuid', vdi);
  const [net] = await s.call<string[]>('network.get_by_name_label', 'mgmt');
  for (const p of await s.call<string[]>('network.get_purpose', net))
    await s.call('network.remove_purpose', net, p);
  await s.call('network.add_purpose', net, 'insecure_nbd');
  const [info] = await s.call<Record<string, string>[]>('VDI.get_nbd_info', vdi);
  const uri = `nbd://127.0.0.1:${info!.port}/${encodeURIComponent(info!.exportname!)}`;
  const out = join(dir, 'cut.raw');
  // a connection that only handshakes is not counted: nbdinfo reads nothing
  await s.call('sim.cut_stream', { path: 'nbd', afterBytes: MiB + 512, nth: 1, count: 2 });
  await run('nbdinfo', ['--size', uri], { timeout: 20_000 });
  for (let i = 0; i < 2; i++) await expect(run('nbdcopy', [uri, out], { timeout: 20_000 })).rejects.toThrow();
  await run('nbdcopy', [uri, out], { timeout: 20_000 });
  expect(readFileSync(out).equals(pool.test.readVdi(uuid, 0, 4 * MiB))).toBe(true);
  pool.test.clearFaults();
});
