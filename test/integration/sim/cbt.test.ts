/** Changed block tracking (docs/xapi.md, "CBT and NBD"): list_changed_blocks bitmaps, CBT log chains, data_destroy, the licence. */
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
    'Failed to calculate changed blocks for given VDIs. [opterr=Source and target VDI are unrelated]',
    '',
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
  expect(await s.failure('VDI.list_changed_blocks', s2, s2)).toEqual([
    'SR_BACKEND_FAILURE_460',
    '',
    'Failed to calculate changed blocks for given VDIs. [opterr=Source and target VDI are same]',
    '',
  ]);
  // along the chain only, from the older log to the newer one
  expect((await s.failure('VDI.list_changed_blocks', s2, s1))[2]).toMatch(
    /\[opterr=Source and target VDI are unrelated\]$/,
  );
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

it('a clone starts without CBT and a log of its own: enable_cbt on it starts a chain unrelated to its source', async () => {
  const vm = (await s.call<string[]>('VM.get_by_name_label', 'vm'))[0];
  const vdi = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
  await s.call('VDI.enable_cbt', vdi);
  const s1 = await s.async('VDI.snapshot', vdi);
  const clone = await s.async('VDI.clone', s1);
  expect(await s.call('VDI.get_cbt_enabled', clone)).toBe(false);
  await s.call('VDI.enable_cbt', clone);
  const c1 = await s.async('VDI.snapshot', clone);
  pool.test.writeVdi(await s.call<string>('VDI.get_uuid', clone), 3 * MiB, Buffer.from('y'));
  const c2 = await s.async('VDI.snapshot', clone);
  expect(setBits(await s.call<string>('VDI.list_changed_blocks', c1, c2))).toEqual([48]);
  // the clone's chain does not reach back to the snapshot it was cloned from
  expect((await s.failure('VDI.list_changed_blocks', s1, c2))[2]).toMatch(
    /\[opterr=Source and target VDI are unrelated\]$/,
  );
  // a snapshot deleted in the middle of a chain keeps the chain connected
  await s.call('VDI.destroy', c1);
  const c3 = await s.async('VDI.snapshot', clone);
  expect(setBits(await s.call<string>('VDI.list_changed_blocks', c2, c3))).toEqual([]);
  await s.call('VDI.disable_cbt', clone);
  const c4 = await s.async('VDI.snapshot', clone);
  expect(await s.call('VDI.get_cbt_enabled', c4)).toBe(false);
  expect((await s.failure('VDI.list_changed_blocks', c3, c4))[2]).toMatch(
    /\[opterr=Source and target VDI are unrelated\]$/,
  );
  for (const v of [c4, c3, c2, clone, s1]) await s.call('VDI.destroy', v);
  await s.call('VDI.disable_cbt', vdi);
});

it('enable_cbt on a pool without the CBT feature: LICENCE_RESTRICTION', async () => {
  const unlicensed = await startPool({
    name: 'no-cbt',
    password: 'pw',
    restrictCbt: true,
    srs: [{ name_label: 'Local', sizeBytes: 64 * MiB }],
    vms: [{ name_label: 'vm', disks: [{ sizeBytes: 4 * MiB }] }],
  });
  try {
    const u = await TestSession.login(unlicensed.url, 'root', 'pw');
    const vm = (await u.call<string[]>('VM.get_by_name_label', 'vm'))[0];
    const vdi = await u.call<string>('VBD.get_VDI', (await u.call<string[]>('VM.get_VBDs', vm))[0]);
    expect(await u.failure('VDI.enable_cbt', vdi)).toEqual(['LICENCE_RESTRICTION', 'CBT']);
    expect(await u.call('VDI.get_cbt_enabled', vdi)).toBe(false);
  } finally {
    await unlicensed.close();
  }
});
