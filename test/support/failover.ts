/** Failover, undo and failback of a Sites job, in process, and a client session on a simulated pool. */
import { withRunContext } from '../../functions/handlers/steps.js';
import { runFailback } from '../../functions/replication/failback/run.js';
import { type FailoverOptions, runFailover } from '../../functions/replication/failover/run.js';
import { undoFailover } from '../../functions/replication/failover/undo.js';
import { Xapi } from '../../functions/xapi/index.js';
import type { SimPool } from '../../sim/types.js';
import type { Sites } from './sites.js';

let counter = 0;

export function failover(s: Sites, o: Partial<FailoverOptions> = {}) {
  return withRunContext(s.deps, s.job.id, (ctx) => runFailover(ctx, { run: `fo-${++counter}`, ...o }));
}

export function undo(s: Sites, vm: string, run = `undo-${++counter}`) {
  return withRunContext(s.deps, s.job.id, (ctx) => undoFailover(ctx, { run, vm }));
}

export function failback(s: Sites, vm: string, planned: boolean, run = `fb-${++counter}`) {
  return withRunContext(s.deps, s.job.id, (ctx) => runFailback(ctx, { run, vm, planned }));
}

export async function withXapi<T>(pool: SimPool, fn: (x: Xapi) => Promise<T>): Promise<T> {
  const x = await Xapi.connect({
    url: pool.url,
    username: pool.username,
    password: pool.password,
    allowPlainHttp: true,
  });
  try {
    return await fn(x);
  } finally {
    await x.logout();
  }
}

type Rec = Record<string, unknown> & { uuid: string; other_config: Record<string, string> };

export const vmByUuid = (pool: SimPool, uuid: string): Rec =>
  pool.test.objects('VM').find(([, r]) => r.uuid === uuid)![1] as Rec;

/** The DR copies of a job on the destination (recorded or not). */
export const copies = (s: Sites): Rec[] =>
  s.destination.test
    .objects('VM')
    .map(([, r]) => r as Rec)
    .filter((r) => r.other_config['xcr:fo-role'] === 'copy' || String(r.name_label).includes('xcr-failover'));

/** Every VM and VDI of either pool that carries a failover key or a pending failover name. */
export const failoverObjects = (s: Sites): string[] =>
  (['source', 'destination'] as const).flatMap((side) =>
    (['VM', 'VDI'] as const).flatMap((cls) =>
      s[side].test
        .objects(cls)
        .filter(([, r]) => {
          const oc = r.other_config as Record<string, string>;
          return (
            Object.keys(oc).some((k) => k.startsWith('xcr:fo-') || k === 'xcr:failover') ||
            String(r.name_label).startsWith('[xcr-failover:')
          );
        })
        .map(([, r]) => `${side} ${cls} ${r.uuid} ${r.name_label}`),
    ),
  );

/** [device, MAC, network name] of a VM's VIFs. */
export function vifsOf(pool: SimPool, vm: Rec): [string, string, string][] {
  const vifs = new Map(pool.test.objects('VIF'));
  const nets = new Map(pool.test.objects('network'));
  return (vm.VIFs as string[])
    .map((ref) => vifs.get(ref)!)
    .map(
      (v) =>
        [String(v.device), String(v.MAC), String(nets.get(v.network as string)!.name_label)] as [
          string,
          string,
          string,
        ],
    )
    .sort();
}

/** uuids of a VM's disks by userdevice order. */
export function disksOf(pool: SimPool, vm: Rec): string[] {
  const vbds = new Map(pool.test.objects('VBD'));
  const vdis = new Map(pool.test.objects('VDI'));
  return (vm.VBDs as string[])
    .map((ref) => vbds.get(ref)!)
    .filter((v) => v.type === 'Disk')
    .sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
    .map((v) => String(vdis.get(v.VDI as string)!.uuid));
}

export async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
