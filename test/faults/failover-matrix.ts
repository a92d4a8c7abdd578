/**
 * The fault matrix for failover and failback. Discovery: one cycle (unplanned failover, guest writes
 * at DR, planned failback) on fresh pools, each phase's call log read back per pool (a new XAPI call
 * gets its scenario by itself). Then, for each phase, pool and call, the call fails every time during
 * one attempt of that phase; the operator's retry (a new run, no faults) must succeed, the cycle is
 * completed, and then: nothing of a failover or failback remains on either pool, nothing leaks, the
 * recovery points that were there are byte-identical, the original VM kept its uuid and the next
 * forward run is a delta, and the original VM holds what the copy held. Every discovered call is a
 * scenario of exactly one of the variant's shard test files (by a hash of phase, pool and call, so
 * the split does not depend on discovery order; each file
 * discovers the same calls on its own pools and runs in its own vitest worker); a file runs its
 * scenarios on WORKERS pairs of pools side by side, with the storage GC's coalesce and the guests'
 * boot cut to milliseconds: the waits, not the work, made the matrix take 13 minutes.
 *
 * A variant gives the job: `vhd` (one VHD disk, differencing exports both ways) or `cbt` (a cbt job
 * with NBD on both pools and a qcow2 disk beside the VHD one: the failover turns CBT on on the DR
 * copy and takes its baseline, the failback reads the changed extents over NBD, the cutover turns
 * CBT on on the original's new disks). Its stream faults join the discovered calls as scenarios:
 * for cbt, the reverse sync's NBD connections cut once (the NBD pool's own retry must finish that
 * failback) and cut on every attempt (the operator's retry must).
 */

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimPool } from '../../sim/types.js';
import {
  disksOf,
  failback,
  failover,
  failoverObjects,
  until,
  vmByUuid,
  withXapi,
} from '../support/failover.js';
import { MiB, type Sites, type SitesOptions, startSites } from '../support/sites.js';

const SKIP = new Set(['session.login_with_password', 'session.logout', 'task.destroy', 'task.get_record']);
const WORKERS = 3;
/** Simulated waits cut for this test: a coalesce of 5 ms (1 s by default), boots of 10 ms (200 ms). */
const FAST = { coalesceMs: 5 };
type Phase = 'failover' | 'failback';
type Side = 'source' | 'destination';
type Call = { phase: Phase; side: Side; method: string };
/** A fault that is not a failing call: NBD connections of one pool cut during one phase. */
type StreamFault = {
  phase: Phase;
  side: Side;
  label: string;
  cut: { afterBytes: number; count: number };
  /** The faulty attempt itself must succeed (the fault is transient, a retry inside it repairs it). */
  recovers: boolean;
};
type Scenario = Call | StreamFault;

export interface MatrixVariant {
  name: 'vhd' | 'cbt';
  shards: number;
  sites: Omit<SitesOptions, 'vms'>;
  disks: NonNullable<SitesOptions['vms'][number]['disks']>;
  /** Calls the discovery must have found beyond those of every variant. */
  discovers: Call[];
  streamFaults: StreamFault[];
  /** The transfer mode of every disk of the next forward run (its job resumed as it was). */
  mode: 'vhd' | 'cbt';
}

const disk0 = { sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 3 }] };
export const VARIANTS: Record<MatrixVariant['name'], MatrixVariant> = {
  vhd: { name: 'vhd', shards: 2, sites: {}, disks: [disk0], discovers: [], streamFaults: [], mode: 'vhd' },
  cbt: {
    name: 'cbt',
    shards: 2,
    sites: {
      job: { transferMode: 'cbt', enableCbt: true },
      sourceNbdPurpose: 'insecure_nbd',
      destinationNbdPurpose: 'insecure_nbd',
    },
    disks: [
      disk0,
      {
        sizeBytes: 4 * MiB,
        userdevice: '1',
        imageFormat: 'qcow2',
        data: [{ offset: MiB, length: MiB, seed: 4 }],
      },
    ],
    discovers: [
      { phase: 'failover', side: 'destination', method: 'VDI.enable_cbt' },
      // the CBT baseline of the copy
      { phase: 'failover', side: 'destination', method: 'VM.snapshot' },
      { phase: 'failback', side: 'destination', method: 'VDI.list_changed_blocks' },
      { phase: 'failback', side: 'destination', method: 'VDI.get_nbd_info' },
      { phase: 'failback', side: 'source', method: 'VDI.enable_cbt' },
    ],
    mode: 'cbt',
    streamFaults: [
      {
        phase: 'failback',
        side: 'destination',
        label: 'first NBD connection cut mid-read',
        cut: { afterBytes: 32 * 1024, count: 1 },
        recovers: true,
      },
      {
        phase: 'failback',
        side: 'destination',
        label: 'every NBD connection cut mid-read',
        cut: { afterBytes: 32 * 1024, count: 1000 },
        recovers: false,
      },
    ],
  },
};

/** One pair of pools with the job's VM, and the seed of its next guest write at DR. */
interface Site {
  sites: Sites;
  web: string;
  seed: number;
}

let site: Site[] = [];
const calls: Call[] = [];

const pool = (w: Site, side: Side): SimPool => (side === 'source' ? w.sites.source : w.sites.destination);

async function startSite(v: MatrixVariant): Promise<Site> {
  const sites = await startSites({
    ...v.sites,
    vms: [{ name_label: 'web', disks: v.disks, vifs: [{ network: 'Pool-wide network' }] }],
    sourceStorage: FAST,
    destinationStorage: FAST,
  });
  for (const p of [sites.source, sites.destination]) p.test.guest({ delayMs: 10 });
  expect((await sites.run()).status).toBe('succeeded');
  return { sites, web: sites.vmUuid('web'), seed: 10 };
}

async function haltSource(w: Site): Promise<void> {
  await withXapi(w.sites.source, async (x) => {
    const ref = await x.getByUuid('VM', w.web);
    if ((await x.call<string>('VM.get_power_state', ref)) !== 'Halted')
      await x.callAsync('VM.hard_shutdown', ref);
  });
}

async function doFailover(w: Site): Promise<string> {
  const r = await failover(w.sites, { vms: [w.web] });
  if (r.vms[0]!.status !== 'failed-over') throw new Error(`${r.vms[0]!.code}: ${r.vms[0]!.message}`);
  const copy = r.vms[0]!.copy!;
  await until(() => vmByUuid(w.sites.destination, copy).guest_metrics !== 'OpaqueRef:NULL');
  return copy;
}

/** Guest writes at DR into each disk of the recorded copy; the hashes of its disks after them. */
function writeAtDr(w: Site): string[] {
  const dest = w.sites.destination;
  const copy = dest.test
    .objects('VM')
    .find(([, r]) => (r.other_config as Record<string, string>)['xcr:fo-role'] === 'copy')![1];
  const disks = disksOf(dest, copy as Parameters<typeof disksOf>[1]);
  for (const d of disks) dest.test.writeVdi(d, 2 * MiB, Buffer.alloc(4096, w.seed++));
  return disks.map((d) => dest.test.hashVdi(d));
}

/** The original VM's disks hold what the copy held at the failback. */
function failedBackContent(w: Site, atDr: string[]): string[] {
  const now = disksOf(w.sites.source, vmByUuid(w.sites.source, w.web)).map((d) =>
    w.sites.source.test.hashVdi(d),
  );
  return JSON.stringify(now) === JSON.stringify(atDr)
    ? []
    : ['the original VM does not hold the copy’s content'];
}

/** Detached disks a failback replaced are the operator's to delete once checked: the test does. */
async function deleteReplaced(w: Site, uuids: string[] | undefined): Promise<void> {
  await withXapi(w.sites.source, async (x) => {
    for (const u of uuids ?? []) await x.destroy('VDI', await x.getByUuid('VDI', u));
  });
}

const hashes = (w: Site) =>
  new Map(w.sites.recoveryPoints('web').map((rp) => [rp.uuid, JSON.stringify(w.sites.rpDiskHashes(rp))]));

async function logged<T>(w: Site, phase: Phase, fn: () => Promise<T>): Promise<T> {
  const before = {
    source: w.sites.source.test.calls().length,
    destination: w.sites.destination.test.calls().length,
  };
  const out = await fn();
  for (const side of ['source', 'destination'] as const) {
    for (const c of new Set(pool(w, side).test.calls().slice(before[side]))) {
      const method = c.replace(/^Async\./, '');
      if (
        !SKIP.has(method) &&
        !calls.some((x) => x.phase === phase && x.side === side && x.method === method)
      )
        calls.push({ phase, side, method });
    }
  }
  return out;
}

/** The next forward run: a delta, every disk in the variant's mode. */
function nextRun(v: MatrixVariant, r: Awaited<ReturnType<Sites['run']>>): string[] {
  const vm = r.vms[0];
  const ok = vm?.kind === 'delta' && vm.modes?.every((m) => m.mode === v.mode);
  return ok ? [] : [`next run: ${JSON.stringify(vm ?? r)}`];
}

const labelOf = (c: Scenario) =>
  'method' in c ? `${c.phase} ${c.side} ${c.method}` : `${c.phase} ${c.side} ${c.label}`;

const shardOf = (c: Scenario, shards: number) =>
  createHash('sha256').update(labelOf(c)).digest().readUInt32BE(0) % shards;

/** The discovery cycle, on the first pair of pools. */
async function discover(v: MatrixVariant): Promise<Site> {
  const w = await startSite(v);
  await logged(w, 'failover', () => doFailover(w));
  const atDr = writeAtDr(w);
  const fb = await logged(w, 'failback', () => failback(w.sites, w.web, true));
  await deleteReplaced(w, fb.replacedDisks);
  expect(failedBackContent(w, atDr)).toEqual([]);
  expect(nextRun(v, await w.sites.run())).toEqual([]);
  return w;
}

function inject(w: Site, s: Scenario): void {
  const test = pool(w, s.side).test;
  if ('method' in s)
    test.injectFault({ method: s.method, count: 1000, error: ['SR_BACKEND_FAILURE_47', '', 'injected'] });
  else test.cutStream({ path: 'nbd', afterBytes: s.cut.afterBytes, count: s.cut.count });
}

/** One scenario: the fault during every attempt of one phase, the retry completes the cycle. */
async function scenario(v: MatrixVariant, w: Site, s: Scenario): Promise<string | undefined> {
  const label = labelOf(s);
  const { sites, web } = w;
  const recovers = 'recovers' in s && s.recovers;
  try {
    await haltSource(w);
    const before = hashes(w);
    const problems: string[] = [];
    let atDr: string[];
    if (s.phase === 'failover') {
      inject(w, s);
      const done = await doFailover(w).then(
        () => true,
        () => false,
      );
      pool(w, s.side).test.clearFaults();
      if (!done && recovers) problems.push('the faulty failover failed');
      if (!done) await doFailover(w);
      atDr = writeAtDr(w);
      const fb = await failback(sites, web, true);
      await deleteReplaced(w, fb.replacedDisks);
    } else {
      await doFailover(w);
      atDr = writeAtDr(w);
      inject(w, s);
      const faulty = await failback(sites, web, true).catch(() => undefined);
      pool(w, s.side).test.clearFaults();
      await deleteReplaced(w, faulty?.replacedDisks);
      if (faulty?.status !== 'failed-back') {
        if (recovers) problems.push('the faulty failback failed');
        const copy = sites.destination.test
          .objects('VM')
          .find(([, r]) => (r.other_config as Record<string, string>)['xcr:fo-role'] === 'copy');
        if (copy && copy[1].power_state === 'Running')
          await until(
            () => vmByUuid(sites.destination, String(copy[1].uuid)).guest_metrics !== 'OpaqueRef:NULL',
          );
        const retry = await failback(sites, web, true);
        await deleteReplaced(w, retry.replacedDisks);
      } else if (!('method' in s) && !recovers) problems.push('the failback did not fail');
    }
    problems.push(...failedBackContent(w, atDr));
    await sites.source.test.settleStorage();
    await sites.destination.test.settleStorage();
    const next = await sites.run();
    const after = hashes(w);
    problems.push(
      ...nextRun(v, next),
      ...failoverObjects(sites).map((l) => `left ${l}`),
      ...sites.leaks(),
      ...[...before]
        .filter(([u, h]) => after.has(u) && after.get(u) !== h)
        .map(([u]) => `point ${u} changed`),
      ...(vmByUuid(sites.source, web).uuid === web ? [] : ['original VM gone']),
    );
    return problems.length ? `${label}: ${problems.join('; ')}` : undefined;
  } catch (err) {
    const at = (err as Error).stack?.split('\n').find((l) => l.includes('functions/'));
    for (const p of [sites.source, sites.destination]) p.test.clearFaults();
    return `${label}: ${(err as Error).message} ${at?.trim() ?? ''}`;
  }
}

/** The matrix's scenarios of one shard (of the variant's), each shard one vitest file. */
export function failoverMatrix(shard: number, v: MatrixVariant = VARIANTS.vhd): void {
  beforeAll(async () => {
    site = await Promise.all([discover(v), ...Array.from({ length: WORKERS - 1 }, () => startSite(v))]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(site.map((w) => w.sites.close()));
  });

  describe(`failover fault matrix (${v.name} job), shard ${shard + 1} of ${v.shards}`, () => {
    it('discovered the XAPI calls of failover and failback on both pools', () => {
      const has = (phase: Phase, side: Side, method: string) =>
        calls.some((c) => c.phase === phase && c.side === side && c.method === method);
      const expected: Call[] = [
        { phase: 'failover', side: 'destination', method: 'VM.clone' },
        { phase: 'failover', side: 'destination', method: 'VM.start' },
        { phase: 'failover', side: 'source', method: 'VM.set_blocked_operations' },
        { phase: 'failback', side: 'destination', method: 'VM.snapshot' },
        { phase: 'failback', side: 'destination', method: 'VM.clean_shutdown' },
        { phase: 'failback', side: 'source', method: 'VDI.clone' },
        { phase: 'failback', side: 'source', method: 'VBD.destroy' },
        { phase: 'failback', side: 'source', method: 'VBD.create' },
        { phase: 'failback', side: 'destination', method: 'VM.create' },
        ...v.discovers,
      ];
      expect(expected.filter((c) => !has(c.phase, c.side, c.method))).toEqual([]);
    });

    it('a failure of any failover or failback call is repaired by the retry: nothing left, points intact', async () => {
      expect(calls.length).toBeGreaterThan(30);
      const all: Scenario[] = [...calls, ...v.streamFaults];
      const mine = all.filter((c) => shardOf(c, v.shards) === shard);
      const failures: string[] = [];
      let next = 0;
      const started = Date.now();
      // each pair of pools takes the next scenario when it is done with one
      await Promise.all(
        site.map(async (w) => {
          while (next < mine.length) {
            const failure = await scenario(v, w, mine[next++]!);
            if (failure) failures.push(failure);
          }
        }),
      );
      console.log(
        `failover matrix (${v.name}) shard ${shard + 1}/${v.shards}: ${mine.length} of ${all.length} scenarios on ${site.length} pairs of pools in ${Math.round((Date.now() - started) / 1000)} s`,
      );
      expect(failures.sort()).toEqual([]);
    }, 600_000);
  });
}
