/** Changed block tracking (docs/xapi.md, "CBT and NBD"): list_changed_blocks bitmaps and data_destroy. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const MiB = 1024 * 1024;
let pool: SimPool;
let s: TestSession;

beforeAll(async () => {
  pool = await startPool({
    name: 'cbt',
    password: 'pw',
    srs: [{ name_label: 'Local', sizeBytes: 256 * MiB }],
    vms: [
      { name_label: 'vm', disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: 4 * MiB, seed: 3 }] }] },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
});
afterAll(async () => {
  await pool?.close();
});

/** Indexes of set bits, MSB first (bit i = byte i/8, mask 0x80 >> i%8). */
function setBits(b64: string): number[] {
  const buf = Buffer.from(b64, 'base64');
  const out: number[] = [];
  for (let i = 0; i < buf.length * 8; i++) if (buf[i >> 3]! & (0x80 >> (i & 7))) out.push(i);
  return out;
}

it('reports changed 64 KiB blocks between two CBT snapshots, also after data_destroy of the older', async () => {
  const vm = (await s.call<string[]>('VM.get_by_name_label', 'vm'))[0];
  const vdi = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
  const uuid = await s.call<string>('VDI.get_uuid', vdi);
  const before = await s.async('VDI.snapshot', vdi);
  expect(await s.failure('VDI.list_changed_blocks', before, vdi)).toEqual([
    'SR_BACKEND_FAILURE_460',
    '',
    'Failed to calculate changed blocks for given VDIs.',
    'Source and target VDI are unrelated',
  ]);
  await s.call('VDI.enable_cbt', vdi);
  await s.call('VDI.enable_cbt', vdi);
  const s1 = await s.async('VDI.snapshot', vdi);
  expect(await s.call('VDI.get_cbt_enabled', s1)).toBe(true);
  pool.test.writeVdi(uuid, 6 * MiB + 10, Buffer.from('x'));
  const s2 = await s.async('VDI.snapshot', vdi);
  const bits = setBits(await s.call<string>('VDI.list_changed_blocks', s1, s2));
  // 16 MiB → 256 bits; 6 MiB + 10 is in the 64 KiB region 96 only
  expect(Buffer.from(await s.call<string>('VDI.list_changed_blocks', s1, s2), 'base64').length).toBe(32);
  expect(bits).toEqual([96]);
  expect(setBits(await s.call<string>('VDI.list_changed_blocks', s2, s2))).toEqual([]);
  expect(await s.failure('VDI.data_destroy', vdi)).toEqual([
    'OPERATION_NOT_ALLOWED',
    `VDI is not a snapshot: ${vdi}`,
  ]);
  const used = Number(await s.call('SR.get_physical_utilisation', await s.call('VDI.get_SR', vdi)));
  await s.async('VDI.data_destroy', s1);
  expect(await s.call('VDI.get_type', s1)).toBe('cbt_metadata');
  expect(setBits(await s.call<string>('VDI.list_changed_blocks', s1, s2))).toEqual(bits);
  expect(await s.failure('VDI.snapshot', s1)).toEqual(['VDI_INCOMPATIBLE_TYPE', s1, 'cbt_metadata']);
  // s1's blocks are all still held by the VDI and s2, so no space comes back; destroying s2 and the VDI frees it
  expect(Number(await s.call('SR.get_physical_utilisation', await s.call('VDI.get_SR', vdi)))).toBe(used);
  // after data_destroy the live disk no longer writes in place into s1's kept generations
  pool.test.writeVdi(uuid, 64 * 1024 - 2, Buffer.from('abcd')); // straddles regions 0 and 1
  pool.test.writeVdi(uuid, 6 * MiB + 3 * 64 * 1024, Buffer.alloc(200 * 1024, 7)); // regions 99..102
  const s3 = await s.async('VDI.snapshot', vdi);
  expect(setBits(await s.call<string>('VDI.list_changed_blocks', s1, s3))).toEqual([
    0, 1, 96, 99, 100, 101, 102,
  ]);
  expect(setBits(await s.call<string>('VDI.list_changed_blocks', s2, s3))).toEqual([0, 1, 99, 100, 101, 102]);
  await s.call('VDI.destroy', s3);
  for (const v of [s1, s2, before]) await s.call('VDI.destroy', v);
});
