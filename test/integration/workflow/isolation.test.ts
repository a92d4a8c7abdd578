/**
 * Failure isolation per VM, end to end: the synthesized state machine run by the local runner
 * against two simulated pools, five VMs, one of them failing in a way the run must survive.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkflowDefinitions } from '../../../cli/local-runner.js';
import { localJobRunner } from '../../../cli/run-job.js';
import type { LeaseStore } from '../../../functions/lease/port.js';
import { leaseKey } from '../../../functions/replication/context.js';
import type { RunResult, VmRunState } from '../../../functions/replication/contract.js';
import { MiB, type Sites, type StepWrapper, startSites } from '../../support/sites.js';

const NAMES = ['vm0', 'vm1', 'vm2', 'vm3', 'vm4'];
const STORAGE_ERROR = ['SR_BACKEND_FAILURE_47', '', 'The SR is not available', ''];
let sites: Sites | undefined;

afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

async function fiveVms(concurrency: number): Promise<Sites> {
  sites = await startSites({
    vms: NAMES.map((name_label, i) => ({
      name_label,
      power_state: 'Running' as const,
      disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 30 + i }] }],
    })),
    job: { concurrency },
  });
  return sites;
}

async function leaseIsFree(s: Sites): Promise<boolean> {
  const probe = await s.leases.acquire(leaseKey(s.job.id), 'probe', 1_000);
  if (probe.acquired) await s.leases.release(leaseKey(s.job.id), 'probe');
  return probe.acquired;
}

function expectOthersCommitted(s: Sites, run: RunResult, failedVm: string): void {
  expect(run.status).toBe('partial');
  expect(run.vms).toHaveLength(5);
  for (const name of NAMES) {
    const vm = run.vms.find((v) => v.vmUuid === s.vmUuid(name))!;
    if (name === failedVm) {
      expect(vm.status).toBe('failed');
      expect(s.recoveryPoints(name)).toHaveLength(0);
    } else {
      expect(vm.status).toBe('succeeded');
      s.assertReplicasMatchSource(name);
    }
  }
  // The event is the run's summary: counters and the failed VM by name, not every VM.
  const { vms: _vms, ...summary } = run;
  expect(s.events.at(-1)).toEqual(summary);
  expect(summary).toMatchObject({ vmCount: 5, succeeded: 4, failed: 1 });
  expect(summary.failures.map((f) => f.vmUuid)).toEqual([s.vmUuid(failedVm)]);
}

describe('one VM fails, the run goes on', () => {
  it('a commit that fails (XAPI fault in its VBD.create) among 5 VMs: rolled back, the others commit, run partial, lease released, event published', async () => {
    const s = await fiveVms(1);
    const failing = s.vmUuid('vm2');
    let commits = 0;
    const faultInCommit: StepWrapper = (step, handler) => async (input) => {
      const state = input as VmRunState;
      if (step !== 'commit-or-rollback' || state.vmUuid !== failing || state.failure) return handler(input);
      commits++;
      s.destination.test.injectFault({ method: 'VBD.create', count: 1000, error: STORAGE_ERROR });
      try {
        return await handler(input);
      } finally {
        s.destination.test.clearFaults();
      }
    };
    const run = await s.run('run-commit-fault', faultInCommit);
    expect(commits).toBeGreaterThanOrEqual(1);
    expectOthersCommitted(s, run, 'vm2');
    expect(run.vms.find((v) => v.vmUuid === failing)!.errorCode).toBe('SR_BACKEND_FAILURE_47');
    expect(await leaseIsFree(s)).toBe(true);
    // The rollback removed what the failed commit had made: nothing leaks, and the next run is whole.
    expect(s.leaks()).toEqual([]);
    const next = await s.run('run-after-commit-fault');
    expect(next.status).toBe('succeeded');
    for (const name of NAMES) s.assertReplicasMatchSource(name);
  }, 120_000);

  it("a Lambda timeout on one VM's stream-delta (the Task's TimeoutSeconds, scaled down): that VM fails with States.Timeout, the others commit", async () => {
    const s = await fiveVms(2);
    const stuck = s.vmUuid('vm3');
    const hang: StepWrapper = (step, handler) => async (input) => {
      if (step === 'stream-delta' && (input as VmRunState).vmUuid === stuck) {
        // A stuck invocation: it outlives the task timeout and never touches XAPI.
        await new Promise((r) => setTimeout(r, 2_500));
        return input;
      }
      return handler(input);
    };
    const oneSecondStreams = (defs: WorkflowDefinitions) => {
      // stream-delta is in the transfer machine (one VM's disk loop, a child of its batch).
      const streams = Object.values(defs.children).flatMap((d) => {
        const state = (d.States as Record<string, { TimeoutSeconds?: number }>)['stream-delta'];
        return state ? [state] : [];
      });
      expect(streams.map((st) => st.TimeoutSeconds)).toEqual([900]);
      streams[0]!.TimeoutSeconds = 1;
      return defs;
    };
    const run = await s.run('run-timeout', hang, undefined, oneSecondStreams);
    expectOthersCommitted(s, run, 'vm3');
    expect(run.vms.find((v) => v.vmUuid === stuck)!.errorCode).toBe('States.Timeout');
    expect(await leaseIsFree(s)).toBe(true);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(s.leaks()).toEqual([]);
  }, 120_000);

  it('a rollback that fails too: the VM ends failed with both errors (record-failure), the run still ends partial and the next run cleans up', async () => {
    const s = await fiveVms(2);
    const broken = s.vmUuid('vm1');
    const alwaysFails: StepWrapper = (step, handler) => async (input) => {
      if (step === 'commit-or-rollback' && (input as VmRunState).vmUuid === broken) {
        throw Object.assign(new Error('XAPI_DOWN: the destination is unreachable'), {
          name: 'XcrPermanentError',
        });
      }
      return handler(input);
    };
    const run = await s.run('run-rollback-fails', alwaysFails);
    expectOthersCommitted(s, run, 'vm1');
    const vm = run.vms.find((v) => v.vmUuid === broken)!;
    expect(vm.errorCode).toBe('XAPI_DOWN');
    expect(vm.message).toMatch(/the rollback failed too \(XAPI_DOWN: /);
    expect(await leaseIsFree(s)).toBe(true);
    const next = await s.run('run-after-rollback-fails');
    expect(next.status).toBe('succeeded');
    expect(s.leaks()).toEqual([]);
  }, 120_000);
});

describe('a run that fails anyway', () => {
  it('an execution that ends without finish-run still releases its lease and publishes a failed event', async () => {
    const s = await fiveVms(2);
    let failures = 1;
    // finish-run cannot release the lease once: the execution fails (no Catch on the last state).
    const leases: LeaseStore = {
      acquire: (k, o, t) => s.leases.acquire(k, o, t),
      release: async (k, o) => {
        // The job's lease only (lock-check's drill sweep releases drill leases before any VM runs).
        if (k === leaseKey(s.job.id) && failures-- > 0)
          throw Object.assign(new Error('SERVICE_UNAVAILABLE: lease store down'), {
            name: 'XcrPermanentError',
          });
        return s.leases.release(k, o);
      },
    };
    const runner = localJobRunner(s.config, s.job, { ...s.deps, leases });
    const run = await runner.run(new Date('2026-12-01T10:00:00Z'));
    expect(run.status).toBe('failed');
    expect(run.reason).toMatch(
      /^the execution failed before finish-run \(XcrPermanentError: .*lease store down.*\); lease released$/,
    );
    const { vms, ...summary } = run;
    expect(s.events.at(-1)).toEqual(summary);
    // What the run recorded before finish-run failed is still counted, in the event and the CLI.
    expect(summary).toMatchObject({ vmCount: 5, succeeded: 5, failed: 0 });
    expect(vms.map((v) => v.status)).toEqual(Array(5).fill('succeeded'));
    expect(await leaseIsFree(s)).toBe(true);
  }, 120_000);
});
