/**
 * The fault matrix for failover and failback. Discovery: one cycle (unplanned failover, guest writes
 * at DR, planned failback) on fresh pools, each phase's call log read back per pool (a new XAPI call
 * gets its scenario by itself). Then, for each phase, pool and call, the call fails every time during
 * one attempt of that phase; the operator's retry (a new run, no faults) must succeed, the cycle is
 * completed, and then: nothing of a failover or failback remains on either pool, nothing leaks, the
 * recovery points that were there are byte-identical, the original VM kept its uuid and the next
 * forward run is a delta. Every discovered call is a scenario of exactly one of SHARDS test files
 * (by a hash of phase, pool and call, so the split does not depend on discovery order; each file
 * discovers the same calls on its own pools and runs in its own vitest worker); a file runs its
 * scenarios on WORKERS pairs of pools side by side, with the storage GC's coalesce and the guests'
 * boot cut to milliseconds: the waits, not the work, made the matrix take 13 minutes.
 */

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimPool } from '../../sim/types.js';
import { failback, failover, failoverObjects, until, vmByUuid, withXapi } from '../support/failover.js';
import { MiB, type Sites, startSites } from '../support/sites.js';

const SKIP = new Set(['session.login_with_password', 'session.logout', 'task.destroy', 'task.get_record']);
const WORKERS = 3;
export const SHARDS = 2;
/** Simulated waits cut for this test: a coalesce of 5 ms (1 s by default), boots of 10 ms (200 ms). */
const FAST = { coalesceMs: 5 };
type Phase = 'failover' | 'failback';
type Side = 'source' | 'destination';
type Call = { phase: Phase; side: Side; method: string };

/** One pair of pools with the job's VM, and the seed of its next guest write at DR. */
interface Site {
  sites: Sites;
  web: string;
  seed: number;
}

let site: Site[] = [];
const calls: Call[] = [];

const pool = (w: Site, side: Side): SimPool => (side === 'source' ? w.sites.source : w.sites.destination);

async function startSite(): Promise<Site> {
  const sites = await startSites({
    vms: [
      {
        name_label: 'web',
        disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 3 }] }],
        vifs: [{ network: 'Pool-wide network' }],
      },
    ],
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

/** Guest writes at DR, into the recorded copy's first disk. */
function writeAtDr(w: Site): void {
  const dest = w.sites.destination.test;
  const copy = dest
    .objects('VM')
    .find(([, r]) => (r.other_config as Record<string, string>)['xcr:fo-role'] === 'copy')![1];
  const vbds = new Map(dest.objects('VBD'));
  const vdis = new Map(dest.objects('VDI'));
  const vbd = (copy.VBDs as string[]).map((r) => vbds.get(r)!).find((v) => v.userdevice === '0')!;
  dest.writeVdi(String(vdis.get(vbd.VDI as string)!.uuid), 2 * MiB, Buffer.alloc(4096, w.seed++));
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

const shardOf = (c: Call) =>
  createHash('sha256').update(`${c.phase} ${c.side} ${c.method}`).digest().readUInt32BE(0) % SHARDS;

/** The discovery cycle, on the first pair of pools. */
async function discover(): Promise<Site> {
  const w = await startSite();
  await logged(w, 'failover', () => doFailover(w));
  writeAtDr(w);
  const fb = await logged(w, 'failback', () => failback(w.sites, w.web, true));
  await deleteReplaced(w, fb.replacedDisks);
  expect((await w.sites.run()).vms[0]!.kind).toBe('delta');
  return w;
}

/** One scenario: `call` fails on every attempt of one phase, the retry completes the cycle. */
async function scenario(w: Site, { phase, side, method }: Call): Promise<string | undefined> {
  const label = `${phase} ${side} ${method}`;
  const { sites, web } = w;
  try {
    await haltSource(w);
    const before = hashes(w);
    const inject = () =>
      pool(w, side).test.injectFault({
        method,
        count: 1000,
        error: ['SR_BACKEND_FAILURE_47', '', 'injected'],
      });
    if (phase === 'failover') {
      inject();
      const done = await doFailover(w).then(
        () => true,
        () => false,
      );
      pool(w, side).test.clearFaults();
      if (!done) await doFailover(w);
      writeAtDr(w);
      const fb = await failback(sites, web, true);
      await deleteReplaced(w, fb.replacedDisks);
    } else {
      await doFailover(w);
      writeAtDr(w);
      inject();
      const faulty = await failback(sites, web, true).catch(() => undefined);
      pool(w, side).test.clearFaults();
      await deleteReplaced(w, faulty?.replacedDisks);
      if (faulty?.status !== 'failed-back') {
        const copy = sites.destination.test
          .objects('VM')
          .find(([, r]) => (r.other_config as Record<string, string>)['xcr:fo-role'] === 'copy');
        if (copy && copy[1].power_state === 'Running')
          await until(
            () => vmByUuid(sites.destination, String(copy[1].uuid)).guest_metrics !== 'OpaqueRef:NULL',
          );
        const retry = await failback(sites, web, true);
        await deleteReplaced(w, retry.replacedDisks);
      }
    }
    await sites.source.test.settleStorage();
    await sites.destination.test.settleStorage();
    const next = await sites.run();
    const after = hashes(w);
    const problems = [
      ...(next.vms[0]?.kind === 'delta' ? [] : [`next run: ${JSON.stringify(next.vms[0] ?? next)}`]),
      ...failoverObjects(sites).map((l) => `left ${l}`),
      ...sites.leaks(),
      ...[...before]
        .filter(([u, h]) => after.has(u) && after.get(u) !== h)
        .map(([u]) => `point ${u} changed`),
      ...(vmByUuid(sites.source, web).uuid === web ? [] : ['original VM gone']),
    ];
    return problems.length ? `${label}: ${problems.join('; ')}` : undefined;
  } catch (err) {
    const at = (err as Error).stack?.split('\n').find((l) => l.includes('functions/'));
    for (const p of [sites.source, sites.destination]) p.test.clearFaults();
    return `${label}: ${(err as Error).message} ${at?.trim() ?? ''}`;
  }
}

/** The matrix's scenarios of one shard (of SHARDS), each shard one vitest file. */
export function failoverMatrix(shard: number): void {
  beforeAll(async () => {
    site = await Promise.all([discover(), ...Array.from({ length: WORKERS - 1 }, startSite)]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(site.map((w) => w.sites.close()));
  });

  describe(`failover fault matrix, shard ${shard + 1} of ${SHARDS}`, () => {
    it('discovered the XAPI calls of failover and failback on both pools', () => {
      const has = (phase: Phase, side: Side, method: string) =>
        calls.some((c) => c.phase === phase && c.side === side && c.method === method);
      expect(has('failover', 'destination', 'VM.clone')).toBe(true);
      expect(has('failover', 'destination', 'VM.start')).toBe(true);
      expect(has('failover', 'source', 'VM.set_blocked_operations')).toBe(true);
      expect(has('failback', 'destination', 'VM.snapshot')).toBe(true);
      expect(has('failback', 'destination', 'VM.clean_shutdown')).toBe(true);
      expect(has('failback', 'source', 'VDI.clone')).toBe(true);
      expect(has('failback', 'source', 'VBD.destroy')).toBe(true);
      expect(has('failback', 'source', 'VBD.create')).toBe(true);
      expect(has('failback', 'destination', 'VM.create')).toBe(true);
    });

    it('a failure of any failover or failback call is repaired by the retry: nothing left, points intact', async () => {
      expect(calls.length).toBeGreaterThan(30);
      const mine = calls.filter((c) => shardOf(c) === shard);
      const failures: string[] = [];
      let next = 0;
      const started = Date.now();
      // each pair of pools takes the next scenario when it is done with one
      await Promise.all(
        site.map(async (w) => {
          while (next < mine.length) {
            const failure = await scenario(w, mine[next++]!);
            if (failure) failures.push(failure);
          }
        }),
      );
      console.log(
        `failover matrix shard ${shard + 1}/${SHARDS}: ${mine.length} of ${calls.length} scenarios on ${site.length} pairs of pools in ${Math.round((Date.now() - started) / 1000)} s`,
      );
      expect(failures.sort()).toEqual([]);
    }, 600_000);
  });
}
