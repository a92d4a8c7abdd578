/**
 * The failover and failback state machines as CDK synthesizes them, executed by the local runner
 * (what `xcr failover` / `xcr failback` do) against two simulated pools: an unplanned failover, a
 * planned failback, a planned failover whose final delta runs the job's batch machine, a
 * failure mid-flow that leaves the lease released, a `failed` event, and a resumable run, and the
 * execution-ended path: an execution that ends without its end step (stopped, timed out, the end
 * step itself failing) gives the lease back and says failed, and its run resumes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { localFailoverRunner } from '../../../cli/failover-job.js';
import { type StepHandler, withRunContext } from '../../../functions/handlers/steps.js';
import { leaseKey } from '../../../functions/replication/context.js';
import { XcrPermanentError } from '../../../functions/replication/errors.js';
import { MAX_LISTED } from '../../../functions/replication/failover/contract.js';
import { workflowEnded, workflowEndedOf } from '../../../functions/replication/failover/ended.js';
import { beginFailover, prepareFailoverVm } from '../../../functions/replication/failover/run.js';
import type { SimPool } from '../../../sim/types.js';
import { copies, disksOf, failoverObjects, until, vmByUuid, withXapi } from '../../support/failover.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const vm = (power_state: 'Halted') => ({
  name_label: 'web',
  power_state,
  disks: [{ sizeBytes: 8 * MiB, data: [{ offset: 0, length: MiB, seed: 1 }] }],
  vifs: [{ network: 'Pool-wide network' }],
});

function machines(s: Sites, wrapStep?: (step: string, h: StepHandler) => StepHandler) {
  return localFailoverRunner(s.config, s.job, s.deps, {
    retryIntervalMs: 0,
    ...(wrapStep ? { wrapStep } : {}),
  });
}

function recordEvents(s: Sites): string[] {
  const events: string[] = [];
  s.deps.events.publishEvent = async (type) => {
    events.push(type);
  };
  return events;
}

async function leaseIsFree(s: Sites): Promise<boolean> {
  const probe = await s.leases.acquire(leaseKey(s.job.id), 'probe', 1000);
  if (probe.acquired) await s.leases.release(leaseKey(s.job.id), 'probe');
  return probe.acquired;
}

describe('the failover and failback state machines, run locally', () => {
  it('unplanned failover to the newest point, then a planned failback into the original VM', async () => {
    sites = await startSites({ vms: [vm('Halted')] });
    const s = sites;
    const web = s.vmUuid('web');
    expect((await s.run()).status).toBe('succeeded');
    const point = s.recoveryPoints('web')[0]!.uuid;
    const events = recordEvents(s);
    const m = machines(s);

    const fo = await m.failover('fo-machine-1', { vms: [web] });
    expect(fo).toMatchObject({ jobId: s.job.id, run: 'fo-machine-1', planned: false });
    expect(fo.vms).toEqual([expect.objectContaining({ vm: web, status: 'failed-over', point })]);
    const copy = vmByUuid(s.destination, fo.vms[0]!.copy!);
    expect(copy.power_state).toBe('Running');
    expect(JSON.parse(copy.other_config['xcr:failover']!)).toMatchObject({
      run: 'fo-machine-1',
      state: 'failed-over',
    });
    expect(String((vmByUuid(s.source, web).blocked_operations as Record<string, string>).start)).toContain(
      copy.uuid,
    );
    expect(events).toEqual(['xcr failover succeeded']);
    expect(await leaseIsFree(s)).toBe(true);

    await until(() => vmByUuid(s.destination, copy.uuid).guest_metrics !== 'OpaqueRef:NULL');
    const [d0] = disksOf(s.destination, copy);
    s.destination.test.writeVdi(d0!, 2 * MiB, Buffer.alloc(4096, 0xa1));
    const atCutover = s.destination.test.hashVdi(d0!);

    const fb = await m.failback('fb-machine-1', { vm: web, planned: true });
    expect(fb).toMatchObject({ run: 'fb-machine-1', vm: web, status: 'failed-back', planned: true });
    expect(fb.bytes).toBeGreaterThan(0);
    const back = vmByUuid(s.source, web);
    expect(back.power_state).toBe('Running');
    expect(back.blocked_operations).toEqual({});
    expect(back.other_config['xcr:failover']).toBeUndefined();
    expect(s.source.test.hashVdi(disksOf(s.source, back)[0]!)).toBe(atCutover);
    expect(copies(s)).toEqual([]);
    expect(s.recoveryPoints('web')[0]!.uuid).toBe(fb.recoveryPoint);
    expect(events).toEqual(['xcr failover succeeded', 'xcr failback succeeded']);
    expect(await leaseIsFree(s)).toBe(true);
    expect((await s.run()).vms[0]).toMatchObject({ status: 'succeeded', kind: 'delta' });
    s.assertNoLeaks();
  });

  it('planned failover: the final delta is a one-VM run of the batch machine; a failback that fails mid-flow releases the lease, says failed, and resumes', async () => {
    sites = await startSites({ vms: [vm('Halted')] });
    const s = sites;
    const web = s.vmUuid('web');
    // started by XAPI, so the guest boots and its agent reports (a clean shutdown needs it)
    await withXapi(s.source, async (x) =>
      x.callAsync('VM.start', await x.getByUuid('VM', web), false, false),
    );
    await until(() => vmByUuid(s.source, web).guest_metrics !== 'OpaqueRef:NULL');
    expect((await s.run()).status).toBe('succeeded');
    const live = s.liveDisks('web')[0]!;
    s.source.test.writeVdi(live, 3 * MiB, Buffer.alloc(64 * 1024, 7));
    const steps: string[] = [];
    const m0 = machines(s, (step, h) => async (input) => {
      steps.push(step);
      return h(input);
    });
    const fo = await m0.failover('fo-planned-1', { planned: true });
    const res = fo.vms[0]!;
    expect(res).toMatchObject({ status: 'failed-over', point: res.finalDelta!.recoveryPoint });
    expect(res.finalDelta!.kind).toBe('delta');
    // the final delta ran on the replication steps, between prepare and clone
    expect(steps.indexOf('snapshot-previous')).toBeGreaterThan(steps.indexOf('failover-prepare'));
    expect(steps.indexOf('commit-or-rollback')).toBeLessThan(steps.indexOf('failover-clone'));
    const copy = vmByUuid(s.destination, res.copy!);
    expect(s.destination.test.hashVdi(disksOf(s.destination, copy)[0]!)).toBe(s.source.test.hashVdi(live));
    expect(vmByUuid(s.source, web).power_state).toBe('Halted');

    await until(() => vmByUuid(s.destination, copy.uuid).guest_metrics !== 'OpaqueRef:NULL');
    const events = recordEvents(s);
    let fail = true;
    const faulty = machines(s, (step, h) => async (input) => {
      if (step === 'failback-cutover' && fail) throw new XcrPermanentError('INJECTED', 'cutover broke');
      return h(input);
    });
    await expect(faulty.failback('fb-planned-1', { vm: web, planned: true })).rejects.toThrow(
      /INJECTED: cutover broke/,
    );
    expect(events).toEqual(['xcr failback failed']);
    expect(await leaseIsFree(s)).toBe(true);
    // the copy's record says how far it got: a new execution of the same run id resumes at the cutover
    expect(JSON.parse(vmByUuid(s.destination, copy.uuid).other_config['xcr:failover']!).state).toBe(
      'cutover',
    );
    fail = false;
    const fb = await faulty.failback('fb-planned-1-resume', { vm: web, planned: true, run: 'fb-planned-1' });
    expect(fb.run).toBe('fb-planned-1');
    expect(fb.status).toBe('failed-back');
    expect(vmByUuid(s.source, web).power_state).toBe('Running');
    expect(copies(s)).toEqual([]);
    expect(events).toEqual(['xcr failback failed', 'xcr failback succeeded']);
    expect(await leaseIsFree(s)).toBe(true);
    s.assertNoLeaks();
  });

  it('refuses bad input naming the field, and a job another run holds, leaving that run its lease', async () => {
    sites = await startSites({ vms: [vm('Halted')] });
    const s = sites;
    const m = machines(s);
    await expect(m.failover('fo-bad', { vms: [] } as never)).rejects.toThrow(/request\.vms/);
    await expect(m.failback('fb-bad', {} as never)).rejects.toThrow(/request\.vm/);
    const other = await s.leases.acquire(leaseKey(s.job.id), 'someone-else', 60_000);
    expect(other.acquired).toBe(true);
    const events = recordEvents(s);
    // a refusal stays one across the machine (the CLI exits 2 on it)
    await expect(m.failover('fo-busy', {})).rejects.toMatchObject({ code: 'JOB_BUSY', refused: true });
    expect(events).toEqual(['xcr failover failed']);
    // the holder keeps it
    expect((await s.leases.acquire(leaseKey(s.job.id), 'probe', 1000)).acquired).toBe(false);
  });

  it('an execution whose end step fails: the execution-ended path releases the lease, says failed once, and the run resumes', async () => {
    sites = await startSites({ vms: [vm('Halted')] });
    const s = sites;
    const web = s.vmUuid('web');
    expect((await s.run()).status).toBe('succeeded');
    const events = recordEvents(s);
    let fail = true;
    const m = machines(s, (step, h) => async (input) => {
      if (step === 'failover-end' && fail) throw new XcrPermanentError('INJECTED', 'end step broke');
      return h(input);
    });
    await expect(m.failover('fo-end-1', { vms: [web] })).rejects.toThrow(/INJECTED: end step broke/);
    expect(events).toEqual(['xcr failover succeeded', 'xcr failover failed']);
    expect(await leaseIsFree(s)).toBe(true);
    fail = false;
    const again = await m.failover('fo-end-1-resume', { vms: [web], run: 'fo-end-1' });
    expect(again.run).toBe('fo-end-1');
    expect(again.vms).toEqual([expect.objectContaining({ vm: web, status: 'failed-over' })]);
    expect(copies(s)).toHaveLength(1);
    expect(await leaseIsFree(s)).toBe(true);
  });

  it("a failover stopped mid-flow: the lease is its run's until the execution-ended path frees it; replication goes on, and the run resumes", async () => {
    sites = await startSites({ vms: [vm('Halted')] });
    const s = sites;
    const web = s.vmUuid('web');
    expect((await s.run()).status).toBe('succeeded');
    // failover-begin and failover-prepare ran (the source VM is fenced), then StopExecution
    await withRunContext(s.deps, s.job.id, async (ctx) => {
      const begun = await beginFailover(ctx, { executionName: 'fo-stop-1', request: { jobId: s.job.id } });
      await prepareFailoverVm(ctx, { ...begun, vm: web });
    });
    expect(vmByUuid(s.source, web).other_config['xcr:failover']).toBeDefined();
    expect(await leaseIsFree(s)).toBe(false);
    expect((await s.run()).status).toBe('skipped');
    const events = recordEvents(s);
    const ended = workflowEndedOf('failover', {
      jobId: s.job.id,
      name: 'fo-stop-1',
      input: { jobId: s.job.id },
      status: 'ABORTED',
      startedAt: '2026-12-01T10:00:00.000Z',
      stoppedAt: '2026-12-01T10:05:00.000Z',
    });
    expect(await workflowEnded(s.deps, ended)).toMatchObject({ run: 'fo-stop-1', released: true });
    expect(events).toEqual(['xcr failover failed']);
    expect(await leaseIsFree(s)).toBe(true);
    // a second delivery of the status change changes nothing
    expect(await workflowEnded(s.deps, ended)).toMatchObject({ released: false });
    expect(events).toEqual(['xcr failover failed']);
    // the job's next run is not blocked: the VM is not failed over yet (no DR copy), so it replicates
    const next = await s.run();
    expect(next.status).toBe('succeeded');
    expect(next.vms[0]).toMatchObject({ vmUuid: web, status: 'succeeded', kind: 'delta' });
    const fo = await machines(s).failover('fo-stop-1-resume', { run: 'fo-stop-1' });
    expect(fo.run).toBe('fo-stop-1');
    expect(fo.vms).toEqual([
      expect.objectContaining({ vm: web, status: 'failed-over', point: next.vms[0]!.recoveryPoint }),
    ]);
    expect(await leaseIsFree(s)).toBe(true);
    s.assertNoLeaks();
  });

  it('many leftovers of crashed runs: all removed and logged, while payloads and events carry a count and the first few', async () => {
    sites = await startSites({ vms: [vm('Halted')] });
    const s = sites;
    const web = s.vmUuid('web');
    expect((await s.run()).status).toBe('succeeded');
    // disks a crashed failover run (or three) left on both pools, more than one log line takes
    const left = [
      ...(await leftovers(s.destination, s.job.id, 530)),
      ...(await leftovers(s.source, s.job.id, 7)),
    ];
    expect(failoverObjects(s).filter((o) => o.includes(' leftover '))).toHaveLength(left.length);
    const sizes: { step: string; bytes: number }[] = [];
    const events: { type: string; bytes: number }[] = [];
    s.deps.events.publishEvent = async (type, detail) => {
      events.push({ type, bytes: JSON.stringify(detail).length });
    };
    const m = machines(s, (step, h) => async (input) => {
      const out = await h(input);
      sizes.push({ step, bytes: JSON.stringify(input).length }, { step, bytes: JSON.stringify(out).length });
      return out;
    });
    const fo = await m.failover('fo-many-1', { vms: [web] });
    expect(fo.vms[0]).toMatchObject({ status: 'failed-over' });
    expect(fo.removed.count).toBe(left.length);
    expect(fo.removed.items).toHaveLength(MAX_LISTED);
    for (const item of fo.removed.items) expect(left).toContain(item);
    // every payload stays small: one VM, whatever the number of leftovers
    expect(Math.max(...sizes.map((x) => x.bytes))).toBeLessThan(8 * 1024);
    expect(JSON.stringify(fo).length).toBeLessThan(4 * 1024);
    // the logs name every one of them, in lines of at most 500
    const lines = s.logs.filter((l) => l.message === 'removed leftovers of interrupted failover runs');
    expect(lines.map((l) => (l.removed as string[]).length)).toEqual([500, 37]);
    expect(lines.flatMap((l) => l.removed as string[]).sort()).toEqual([...left].sort());
    expect(failoverObjects(s).filter((o) => o.includes(' leftover '))).toEqual([]);

    // the undo bounds them the same way, in its event too
    await leftovers(s.destination, s.job.id, 40);
    const undone = await m.failover('undo-many-1', { undo: { vm: web } });
    expect(undone.removed.count).toBeGreaterThan(40);
    expect(undone.removed.items).toHaveLength(MAX_LISTED);
    expect(events.find((e) => e.type === 'xcr failover undone')!.bytes).toBeLessThan(4 * 1024);
    expect(Math.max(...sizes.map((x) => x.bytes))).toBeLessThan(8 * 1024);
  });
});

/** `n` detached disks tagged as a dead failover run's DR copy disks (what a crash leaves), their names as a sweep reports them. */
async function leftovers(pool: SimPool, jobId: string, n: number): Promise<string[]> {
  return withXapi(pool, async (x) => {
    const sr = (await x.call<string[]>('SR.get_all'))[0]!;
    const made: string[] = [];
    for (let i = 0; i < n; i++) {
      const ref = await x.call<string>('VDI.create', {
        name_label: `leftover ${i}`,
        SR: sr,
        virtual_size: '1048576',
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      const uuid = await x.call<string>('VDI.get_uuid', ref);
      await x.call('VDI.set_other_config', ref, {
        'xcr:fo-job': jobId,
        'xcr:fo-run': `dead-run-${i % 3}`,
        'xcr:fo-role': 'copy-disk',
        'xcr:self': uuid,
      });
      made.push(`VDI ${uuid}`);
    }
    return made;
  });
}
