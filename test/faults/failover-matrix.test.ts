/**
 * The fault matrix for failover and failback. Discovery: one cycle (unplanned failover, guest writes
 * at DR, planned failback) on fresh pools, each phase's call log read back per pool (a new XAPI call
 * gets its scenario by itself). Then, for each phase, pool and call, the call fails every time during
 * one attempt of that phase; the operator's retry (a new run, no faults) must succeed, the cycle is
 * completed, and then: nothing of a failover or failback remains on either pool, nothing leaks, the
 * recovery points that were there are byte-identical, the original VM kept its uuid and the next
 * forward run is a delta.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimPool } from '../../sim/types.js';
import { failback, failover, failoverObjects, until, vmByUuid, withXapi } from '../support/failover.js';
import { MiB, type Sites, startSites } from '../support/sites.js';

const SKIP = new Set(['session.login_with_password', 'session.logout', 'task.destroy', 'task.get_record']);
type Phase = 'failover' | 'failback';
type Side = 'source' | 'destination';

let sites: Sites;
let web: string;
const calls: { phase: Phase; side: Side; method: string }[] = [];

const pool = (side: Side): SimPool => (side === 'source' ? sites.source : sites.destination);

async function haltSource(): Promise<void> {
  await withXapi(sites.source, async (x) => {
    const ref = await x.getByUuid('VM', web);
    if ((await x.call<string>('VM.get_power_state', ref)) !== 'Halted')
      await x.callAsync('VM.hard_shutdown', ref);
  });
}

async function doFailover(): Promise<string> {
  const r = await failover(sites, { vms: [web] });
  if (r.vms[0]!.status !== 'failed-over') throw new Error(`${r.vms[0]!.code}: ${r.vms[0]!.message}`);
  const copy = r.vms[0]!.copy!;
  await until(() => vmByUuid(sites.destination, copy).guest_metrics !== 'OpaqueRef:NULL');
  return copy;
}

/** Guest writes at DR, into the recorded copy's first disk. */
function writeAtDr(seed: number): void {
  const copy = sites.destination.test
    .objects('VM')
    .find(([, r]) => (r.other_config as Record<string, string>)['xcr:fo-role'] === 'copy')![1];
  const vbds = new Map(sites.destination.test.objects('VBD'));
  const vdis = new Map(sites.destination.test.objects('VDI'));
  const vbd = (copy.VBDs as string[]).map((r) => vbds.get(r)!).find((v) => v.userdevice === '0')!;
  sites.destination.test.writeVdi(
    String(vdis.get(vbd.VDI as string)!.uuid),
    2 * MiB,
    Buffer.alloc(4096, seed),
  );
}

/** Detached disks a failback replaced are the operator's to delete once checked: the test does. */
async function deleteReplaced(uuids: string[] | undefined): Promise<void> {
  await withXapi(sites.source, async (x) => {
    for (const u of uuids ?? []) await x.destroy('VDI', await x.getByUuid('VDI', u));
  });
}

const hashes = () =>
  new Map(sites.recoveryPoints('web').map((rp) => [rp.uuid, JSON.stringify(sites.rpDiskHashes(rp))]));

async function logged<T>(phase: Phase, fn: () => Promise<T>): Promise<T> {
  const before = {
    source: sites.source.test.calls().length,
    destination: sites.destination.test.calls().length,
  };
  const out = await fn();
  for (const side of ['source', 'destination'] as const) {
    for (const c of new Set(pool(side).test.calls().slice(before[side]))) {
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

beforeAll(async () => {
  sites = await startSites({
    vms: [
      {
        name_label: 'web',
        disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 3 }] }],
        vifs: [{ network: 'Pool-wide network' }],
      },
    ],
  });
  web = sites.vmUuid('web');
  expect((await sites.run()).status).toBe('succeeded');
  await logged('failover', doFailover);
  writeAtDr(1);
  const fb = await logged('failback', () => failback(sites, web, true));
  await deleteReplaced(fb.replacedDisks);
  expect((await sites.run()).vms[0]!.kind).toBe('delta');
}, 120_000);
afterAll(async () => {
  await sites?.close();
});

describe('failover fault matrix', () => {
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
    const failures: string[] = [];
    let seed = 10;
    for (const { phase, side, method } of calls) {
      const label = `${phase} ${side} ${method}`;
      try {
        await haltSource();
        const before = hashes();
        const inject = () =>
          pool(side).test.injectFault({
            method,
            count: 1000,
            error: ['SR_BACKEND_FAILURE_47', '', 'injected'],
          });
        if (phase === 'failover') {
          inject();
          const done = await doFailover().then(
            () => true,
            () => false,
          );
          pool(side).test.clearFaults();
          if (!done) await doFailover();
          writeAtDr(seed++);
          const fb = await failback(sites, web, true);
          await deleteReplaced(fb.replacedDisks);
        } else {
          await doFailover();
          writeAtDr(seed++);
          inject();
          const faulty = await failback(sites, web, true).catch(() => undefined);
          pool(side).test.clearFaults();
          await deleteReplaced(faulty?.replacedDisks);
          if (faulty?.status !== 'failed-back') {
            const copy = sites.destination.test
              .objects('VM')
              .find(([, r]) => (r.other_config as Record<string, string>)['xcr:fo-role'] === 'copy');
            if (copy && copy[1].power_state === 'Running')
              await until(
                () => vmByUuid(sites.destination, String(copy[1].uuid)).guest_metrics !== 'OpaqueRef:NULL',
              );
            const retry = await failback(sites, web, true);
            await deleteReplaced(retry.replacedDisks);
          }
        }
        await sites.source.test.settleStorage();
        await sites.destination.test.settleStorage();
        const next = await sites.run();
        const after = hashes();
        const problems = [
          ...(next.vms[0]?.kind === 'delta' ? [] : [`next run: ${JSON.stringify(next.vms[0] ?? next)}`]),
          ...failoverObjects(sites).map((l) => `left ${l}`),
          ...sites.leaks(),
          ...[...before]
            .filter(([u, h]) => after.has(u) && after.get(u) !== h)
            .map(([u]) => `point ${u} changed`),
          ...(vmByUuid(sites.source, web).uuid === web ? [] : ['original VM gone']),
        ];
        if (problems.length) failures.push(`${label}: ${problems.join('; ')}`);
      } catch (err) {
        const at = (err as Error).stack?.split('\n').find((l) => l.includes('functions/'));
        failures.push(`${label}: ${(err as Error).message} ${at?.trim() ?? ''}`);
        for (const p of [sites.source, sites.destination]) p.test.clearFaults();
      }
    }
    expect(failures).toEqual([]);
  }, 1_500_000);
});
