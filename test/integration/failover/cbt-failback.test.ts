/**
 * The CBT reverse path of a failback, end to end on two simulated pools: the failover turns CBT on
 * on the DR copy and takes its baseline before the copy starts; the failback sends only the 64 KiB
 * extents CBT lists since then (or since the last pre-sync) over NBD, qcow2 disks included; where
 * the DR pool has no CBT a qcow2 disk travels whole into a new disk, saying so.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  copies,
  disksOf,
  failback,
  failover,
  until,
  vifsOf,
  vmByUuid,
  withXapi,
} from '../../support/failover.js';
import { MiB, type Sites, type SitesOptions, startSites } from '../../support/sites.js';

const KiB = 1024;
const EXTENT = 64 * KiB;
const SIZE = 32 * MiB;
let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const vms = [
  {
    name_label: 'db',
    tags: ['prod'],
    disks: [
      { sizeBytes: SIZE, imageFormat: 'qcow2' as const, data: [{ offset: 0, length: 8 * MiB, seed: 1 }] },
      { sizeBytes: SIZE, userdevice: '1', data: [{ offset: 0, length: 4 * MiB, seed: 2 }] },
    ],
    vifs: [{ network: 'Pool-wide network' }],
  },
];

/** The 64 KiB extents a set of writes touches. */
function extents(writes: [offset: number, length: number][]): number {
  const touched = new Set<number>();
  for (const [offset, length] of writes)
    for (let i = Math.floor(offset / EXTENT); i <= Math.floor((offset + length - 1) / EXTENT); i++)
      touched.add(i);
  return touched.size;
}

function write(s: Sites, vdi: string, writes: [number, number][], byte: number): number {
  for (const [offset, length] of writes) s.destination.test.writeVdi(vdi, offset, Buffer.alloc(length, byte));
  return extents(writes);
}

const sm = (pool: Sites['source'], uuid: string) =>
  pool.test.objects('VDI').find(([, r]) => r.uuid === uuid)![1] as {
    cbt_enabled: boolean;
    sm_config: Record<string, string>;
  };

/** A cbt job with NBD on both pools: the first run, then an unplanned failover of the halted VM. */
async function failedOver(o: Partial<SitesOptions> = {}) {
  sites = await startSites({
    vms,
    job: { transferMode: 'cbt', enableCbt: true },
    sourceNbdPurpose: 'insecure_nbd',
    destinationNbdPurpose: 'insecure_nbd',
    ...o,
  });
  const s = sites;
  const db = s.vmUuid('db');
  expect((await s.run()).status).toBe('succeeded');
  const r = await failover(s, { vms: [db] });
  expect(r.vms[0]!.status).toBe('failed-over');
  const copy = r.vms[0]!.copy!;
  await until(() => vmByUuid(s.destination, copy).guest_metrics !== 'OpaqueRef:NULL');
  return { s, db, copy, warnings: r.vms[0]!.warnings };
}

describe('failback over CBT', () => {
  it('planned: only the changed 64 KiB extents travel (qcow2 disk included), the original keeps its identity and has the copy’s disks; the next run is a cbt delta', async () => {
    const { s, db, copy, warnings } = await failedOver();
    expect(warnings).toEqual([]);
    const copyVm = vmByUuid(s.destination, copy);
    const record = JSON.parse(copyVm.other_config['xcr:failover']!) as { cbtBaseline?: string };
    expect(record.cbtBaseline).toBeDefined();
    const [d0, d1] = disksOf(s.destination, copyVm);
    expect([d0!, d1!].map((v) => sm(s.destination, v).cbt_enabled)).toEqual([true, true]);
    const original = vmByUuid(s.source, db);
    const macs = vifsOf(s.source, original);
    // guest writes at DR: scattered small writes, one straddling two extents, one of 300 KiB
    const changed =
      write(
        s,
        d0!,
        [
          [2 * MiB + 4096, 8192],
          [20 * MiB + EXTENT - 100, 200],
          [9 * MiB, 300 * KiB],
        ],
        0xa1,
      ) + write(s, d1!, [[30 * MiB, 4096]], 0xa2);
    expect(changed).toBe(1 + 2 + 5 + 1);
    const atCutover = [d0!, d1!].map((v) => s.destination.test.hashVdi(v));
    const imported = s.source.test.importedBytes();
    const exported = s.destination.test.exportedBytes();
    const r = await failback(s, db, true);
    expect(r.status).toBe('failed-back');
    const wire = s.source.test.importedBytes() - imported;
    expect(r.bytes).toBe(wire);
    expect(wire).toBeGreaterThanOrEqual(changed * EXTENT);
    expect(wire).toBeLessThanOrEqual(1.01 * changed * EXTENT);
    // nothing went as a VHD export: the data came over NBD
    expect(s.destination.test.exportedBytes()).toBe(exported);
    const back = vmByUuid(s.source, db);
    expect(back.power_state).toBe('Running');
    expect(back.tags).toEqual(['prod']);
    expect(vifsOf(s.source, back)).toEqual(macs);
    const now = disksOf(s.source, back);
    expect(now.map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect(sm(s.source, now[0]!).sm_config['image-format']).toBe('qcow2');
    // CBT on the VM's new disks, so the cbt job resumes with a delta
    expect(now.map((v) => sm(s.source, v).cbt_enabled)).toEqual([true, true]);
    expect(copies(s)).toEqual([]);
    s.source.test.writeVdi(now[1]!, 5 * MiB, Buffer.alloc(4096, 0xa3));
    const next = await s.run();
    expect(next.vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    expect(next.vms[0]!.modes!.map((m) => m.mode)).toEqual(['cbt', 'cbt']);
    expect(next.vms[0]!.bytes).toBeLessThan(2 * EXTENT);
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });

  it('a pre-sync, then the planned failback sends only the extents changed since, in chunks of cbtChunkMiB', async () => {
    const { s, db, copy } = await failedOver({
      job: { transferMode: 'auto', enableCbt: true, cbtChunkMiB: 16 },
    });
    const [d0, d1] = disksOf(s.destination, vmByUuid(s.destination, copy));
    // 20 MiB of writes on the qcow2 disk: two chunks of at most 16 MiB
    const first = write(s, d0!, [[6 * MiB, 20 * MiB]], 0xb1) + write(s, d1!, [[0, 4096]], 0xb2);
    const calls = s.destination.test.calls().length;
    const pre = await failback(s, db, false);
    expect(pre.status).toBe('synced');
    // disk 0 in two steps of the sync loop (each lists the changes again and goes on at its cursor), disk 1 in one
    const listed = s.destination.test
      .calls()
      .slice(calls)
      .filter((c) => c === 'VDI.list_changed_blocks');
    expect(listed).toHaveLength(3);
    expect(pre.bytes).toBeGreaterThanOrEqual(first * EXTENT);
    expect(pre.bytes).toBeLessThanOrEqual(1.01 * first * EXTENT);
    expect(vmByUuid(s.destination, copy).power_state).toBe('Running');
    const second = write(s, d0!, [[14 * MiB + 512, 512]], 0xb3) + write(s, d1!, [[31 * MiB, 70 * KiB]], 0xb4);
    const atCutover = [d0!, d1!].map((v) => s.destination.test.hashVdi(v));
    const imported = s.source.test.importedBytes();
    const final = await failback(s, db, true);
    expect(final.status).toBe('failed-back');
    expect(final.bytes).toBe(s.source.test.importedBytes() - imported);
    expect(final.bytes).toBeGreaterThanOrEqual(second * EXTENT);
    expect(final.bytes).toBeLessThanOrEqual(1.01 * second * EXTENT);
    expect(disksOf(s.source, vmByUuid(s.source, db)).map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });

  it('a DR pool without the CBT feature: the failover says so; the qcow2 disk travels whole into a new disk, the VHD one as a differencing export', async () => {
    const { s, db, copy, warnings } = await failedOver({ destinationRestrictsCbt: true });
    expect(warnings.join('\n')).toMatch(/disk 0 of the DR copy has no CBT .*LICENCE_RESTRICTION/);
    const [d0, d1] = disksOf(s.destination, vmByUuid(s.destination, copy));
    write(s, d0!, [[3 * MiB, 4096]], 0xc1);
    write(s, d1!, [[3 * MiB, 4096]], 0xc2);
    const atCutover = [d0!, d1!].map((v) => s.destination.test.hashVdi(v));
    const oldDisks = disksOf(s.source, vmByUuid(s.source, db));
    const r = await failback(s, db, true);
    expect(r.status).toBe('failed-back');
    expect(r.warnings.join('\n')).toMatch(
      /disk 0 is qcow2, which has no VHD differencing export, .* sent whole into a new disk \(its allocated clusters over NBD\)/,
    );
    // the qcow2 disk's allocated clusters (8 MiB of data and the written one) and the VHD disk's one
    // changed 2 MiB block (a differencing export: its whole 4 MiB would not fit)
    expect(r.bytes).toBeGreaterThan(8 * MiB + 2 * MiB);
    expect(r.bytes).toBeLessThan(8 * MiB + EXTENT + 2 * MiB + 64 * KiB);
    const back = vmByUuid(s.source, db);
    const now = disksOf(s.source, back);
    expect(now.map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect(r.replacedDisks).toEqual(oldDisks);
    expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    s.assertReplicasMatchSource('db');
    s.assertNoLeaks();
  });

  it('CBT turned off on the copy after a pre-sync: the qcow2 disk goes whole into a new disk, the other goes on over CBT; the superseded disk goes at the end', async () => {
    const { s, db, copy } = await failedOver();
    const [d0, d1] = disksOf(s.destination, vmByUuid(s.destination, copy));
    write(s, d0!, [[1 * MiB, 4096]], 0xd1);
    expect((await failback(s, db, false)).status).toBe('synced');
    await withXapi(s.destination, async (x) => x.call('VDI.disable_cbt', await x.getByUuid('VDI', d0!)));
    write(s, d0!, [[12 * MiB, 4096]], 0xd2);
    const changed = write(s, d1!, [[7 * MiB, 4096]], 0xd3);
    const atCutover = [d0!, d1!].map((v) => s.destination.test.hashVdi(v));
    const r = await failback(s, db, true);
    expect(r.status).toBe('failed-back');
    expect(r.warnings.join('\n')).toMatch(
      /disk 0 is qcow2, .*CBT is off on the DR copy's disk: it is sent whole into a new disk/,
    );
    // disk 0's allocated clusters whole (its 8 MiB of data, the 1 MiB write inside it, the cluster
    // at 12 MiB), disk 1's one changed extent
    expect(r.bytes).toBeGreaterThan(8 * MiB + EXTENT + changed * EXTENT);
    expect(r.bytes).toBeLessThan(8 * MiB + EXTENT + changed * EXTENT + 4 * KiB);
    expect(disksOf(s.source, vmByUuid(s.source, db)).map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect(copies(s)).toEqual([]);
    s.assertNoLeaks();
  });

  it('the source pool refusing VDI.enable_cbt on the failback disks: the failback stops before its cutover, the original untouched; the retry completes and the next run is a cbt delta', async () => {
    const { s, db, copy } = await failedOver();
    const [d0] = disksOf(s.destination, vmByUuid(s.destination, copy));
    write(s, d0!, [[2 * MiB, 4096]], 0xe1);
    const atCutover = disksOf(s.destination, vmByUuid(s.destination, copy)).map((v) =>
      s.destination.test.hashVdi(v),
    );
    const before = disksOf(s.source, vmByUuid(s.source, db));
    s.source.test.injectFault({
      method: 'VDI.enable_cbt',
      count: 100,
      error: ['SR_BACKEND_FAILURE_47', '', 'x'],
    });
    await expect(failback(s, db, true)).rejects.toThrow(
      /CBT_UNAVAILABLE: disk 0: VDI.enable_cbt failed .*stops before its cutover/,
    );
    s.source.test.clearFaults();
    expect(disksOf(s.source, vmByUuid(s.source, db))).toEqual(before);
    const r = await failback(s, db, true);
    expect(r.status).toBe('failed-back');
    const now = disksOf(s.source, vmByUuid(s.source, db));
    expect(now.map((v) => s.source.test.hashVdi(v))).toEqual(atCutover);
    expect(now.map((v) => sm(s.source, v).cbt_enabled)).toEqual([true, true]);
    const next = await s.run();
    expect(next.vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    expect(next.vms[0]!.modes!.map((m) => m.mode)).toEqual(['cbt', 'cbt']);
  });
});
