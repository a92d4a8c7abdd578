import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type DrillOutcome,
  isReport,
  type LocalDrillOptions,
  localDrillRunner,
} from '../../cli/drill-job.js';
import { jsonLogger, localDeps } from '../../cli/local-deps.js';
import type { WorkflowDefinitions } from '../../cli/local-runner.js';
import { parseConfig } from '../../functions/config/load.js';
import type { JobConfig, XcrConfig } from '../../functions/config/schema.js';
import { createStepHandlers, type StepHandler } from '../../functions/handlers/steps.js';
import { FileLeaseStore } from '../../functions/lease/index.js';
import type { RunResult, RunSummary } from '../../functions/replication/contract.js';
import type { DrillInput, DrillReport } from '../../functions/replication/drill/contract.js';
import type { HandlerDeps } from '../../functions/replication/ports.js';
import { Xapi } from '../../functions/xapi/index.js';
import { startPool } from '../../sim/index.js';
import type { GuestBehaviour, SimPool, SimStorageSettings, SimVmSpec } from '../../sim/types.js';
import { runLocalExecution } from './run-local.js';

export const MiB = 2 ** 20;
export const BLOCK = 2 * MiB;

type Rec = Record<string, unknown> & { uuid: string; other_config: Record<string, string> };

/** A user's copy (VM.clone, VDI.copy…) carries the job's keys with someone else's `xcr:self`. */
const isCopy = (r: Rec) => r.other_config['xcr:self'] !== undefined && r.other_config['xcr:self'] !== r.uuid;

export interface SitesOptions {
  vms: SimVmSpec[];
  /** VMs the destination pool already holds (other workloads), none by default. */
  destinationVms?: SimVmSpec[];
  job?: Partial<JobConfig>;
  /** More jobs over the same pools and VMs (ids required), run with `runJob`. */
  extraJobs?: (Partial<JobConfig> & { id: string })[];
  /** Names of the VMs the job selects (default: all). */
  select?: string[];
  replicaSrBytes?: number;
  /** SR type of the destination's SR (default ext); the source SR's size (default 64 GiB). */
  replicaSrType?: string;
  sourceSrBytes?: number;
  sourceHosts?: number;
  destinationHosts?: number;
  /** Purpose given to the source pool's network, which makes VDI.get_nbd_info return records. */
  sourceNbdPurpose?: 'nbd' | 'insecure_nbd';
  /** The same for the destination pool (a cbt failback reads the DR copy's changed blocks over NBD). */
  destinationNbdPurpose?: 'nbd' | 'insecure_nbd';
  /** The destination pool lacks the CBT feature (pool.restrictions.restrict_cbt = "true"). */
  destinationRestrictsCbt?: boolean;
  /** Network names of each pool (default: "Pool-wide network" / "Replica network"). */
  sourceNetworks?: string[];
  destinationNetworks?: string[];
  /** The destination pool cannot hold a vTPM (pool.restrictions.restrict_vtpm = "true"). */
  destinationRestrictsVtpm?: boolean;
  /** Serve the source pool over https with this certificate (pinned by fingerprint in the config). */
  sourceTls?: { cert: string; key: string };
  /** Storage timing of each simulated pool (GC quiet period, coalesce time, chain limit, …). */
  sourceStorage?: Partial<SimStorageSettings>;
  destinationStorage?: Partial<SimStorageSettings>;
  /** How guests booted on the destination behave (drills). */
  destinationGuests?: GuestBehaviour[];
}

export type StepWrapper = (step: string, handler: StepHandler) => StepHandler;

export type DrillRequest = Omit<DrillInput, 'jobId'> & { jobId?: string; drillRun?: string };

export interface Sites {
  source: SimPool;
  destination: SimPool;
  config: XcrConfig;
  job: JobConfig;
  handlers: Record<string, StepHandler>;
  deps: HandlerDeps;
  leases: FileLeaseStore;
  /** Run events published so far (finish-run's, and the execution-ended path's). */
  events: RunSummary[];
  logs: Record<string, unknown>[];
  /** Where the runs' file leases live. */
  stateDir: string;
  /**
   * Runs the job once; `wrap` may decorate step handlers (to inject crashes, pauses, duplicates),
   * `transform` the synthesized definitions (to scale their timeouts down).
   */
  run(
    runId?: string,
    wrap?: StepWrapper,
    onStateEvent?: (event: unknown) => void,
    transform?: (definitions: WorkflowDefinitions) => WorkflowDefinitions,
  ): Promise<RunResult>;
  /** Runs another job of `extraJobs` once. */
  runJob(jobId: string, runId?: string, wrap?: StepWrapper): Promise<RunResult>;
  /**
   * One execution of the job's (or `jobId`'s) synthesized drill state machine in the local runner;
   * `runner` shortens or decorates it (timing, check-wait, wrapped steps).
   */
  drill(o?: DrillRequest, runner?: LocalDrillOptions): Promise<DrillReport>;
  /** A drill execution as the run-ended rule starts it (`afterRun`): a report, or not due. */
  drillOutcome(o: DrillRequest, runner?: LocalDrillOptions): Promise<DrillOutcome>;
  /** Moves the lease store's clock forward (to let an abandoned run's lease expire). */
  advanceClock(ms: number): void;
  vmUuid(name: string): string;
  /** The live (non-snapshot) VDI uuids of a source VM, by userdevice order. */
  liveDisks(name: string): string[];
  recoveryPoints(vmName: string): Rec[];
  /** [userdevice, hash] of a recovery point's disks. */
  rpDiskHashes(rp: Rec): [string, string][];
  exportedSnapshot(vmName: string): Rec | undefined;
  snapshotDiskHashes(snapshot: Rec): [string, string][];
  assertReplicasMatchSource(vmName: string): void;
  /** VHD chain depth (counting the disk) of every managed VDI on the destination. */
  destinationChainDepths(): number[];
  /** Objects a run left that should not be there (empty when clean). */
  leaks(jobId?: string): string[];
  assertNoLeaks(): void;
  close(): Promise<void>;
}

let runCounter = 0;

export async function startSites(o: SitesOptions): Promise<Sites> {
  const source = await startPool({
    name: 'site-a',
    hosts: o.sourceHosts,
    srs: [{ name_label: 'Local storage', sizeBytes: o.sourceSrBytes ?? 64 * 2 ** 30, shared: true }],
    networks: (o.sourceNetworks ?? ['Pool-wide network']).map((name_label) => ({ name_label })),
    vms: o.vms,
    ...(o.sourceTls ? { tls: o.sourceTls } : {}),
    ...(o.sourceStorage ? { storage: o.sourceStorage } : {}),
  });
  const destination = await startPool({
    name: 'site-b',
    hosts: o.destinationHosts,
    srs: [
      {
        name_label: 'Replica storage',
        sizeBytes: o.replicaSrBytes ?? 64 * 2 ** 30,
        shared: true,
        ...(o.replicaSrType ? { type: o.replicaSrType } : {}),
      },
    ],
    networks: [
      ...(o.destinationNetworks ?? ['Replica network']).map((name_label) => ({ name_label })),
      ...(o.destinationGuests ? [{ name_label: 'Drill network' }] : []),
    ],
    ...(o.destinationVms ? { vms: o.destinationVms } : {}),
    ...(o.destinationRestrictsVtpm ? { restrictVtpm: true } : {}),
    ...(o.destinationRestrictsCbt ? { restrictCbt: true } : {}),
    ...(o.destinationStorage ? { storage: o.destinationStorage } : {}),
    ...(o.destinationGuests ? { guests: o.destinationGuests } : {}),
  });
  if (o.sourceNbdPurpose) await addNetworkPurpose(source, o.sourceNbdPurpose, o.sourceTls?.cert);
  if (o.destinationNbdPurpose) await addNetworkPurpose(destination, o.destinationNbdPurpose);
  const vmsByName = new Map(source.test.objects('VM').map(([, r]) => [r.name_label as string, r as Rec]));
  const vmUuid = (name: string) => {
    const vm = vmsByName.get(name);
    if (!vm) throw new Error(`no source VM ${name}`);
    return vm.uuid;
  };
  const jobDefaults = {
    source: { pool: 'a' },
    destination: { pool: 'b', sr: { name: 'Replica storage' } },
    vms: { uuids: (o.select ?? o.vms.map((v) => v.name_label)).map(vmUuid) },
    schedule: { rate: '10 minutes' },
    retention: 3,
  };
  const config = parseConfig({
    version: 1,
    pools: {
      a: {
        url: source.url,
        username: source.username,
        password: { env: 'XCR_TEST_A' },
        ...(o.sourceTls
          ? { tlsFingerprint: new X509Certificate(o.sourceTls.cert).fingerprint256 }
          : { allowPlainHttp: true }),
      },
      b: {
        url: destination.url,
        username: destination.username,
        password: { env: 'XCR_TEST_B' },
        allowPlainHttp: true,
      },
    },
    jobs: [
      { id: 'job1', ...jobDefaults, ...o.job },
      ...(o.extraJobs ?? []).map((j) => ({ ...jobDefaults, ...j })),
    ],
  });
  const job = config.jobs[0]!;
  const stateDir = mkdtempSync(join(tmpdir(), 'xcr-test-'));
  const logs: Record<string, unknown>[] = [];
  let clockOffset = 0;
  const now = () => new Date(Date.now() + clockOffset);
  const events: RunSummary[] = [];
  const leases = new FileLeaseStore(stateDir, { now });
  const deps = localDeps({
    config,
    stateDir,
    leases,
    env: { XCR_TEST_A: source.password, XCR_TEST_B: destination.password },
    logger: jsonLogger((line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
    onRunResult: (result) => events.push(result),
  });
  const handlers = createStepHandlers(deps);
  const objects = (pool: SimPool, cls: 'VM' | 'VDI' | 'VBD' | 'task') =>
    pool.test.objects(cls).map(([ref, r]) => [ref, r as Rec] as const);

  const sites: Sites = {
    source,
    destination,
    config,
    job,
    handlers,
    deps,
    leases,
    events,
    logs,
    stateDir,
    vmUuid,
    async run(runId = `run-${++runCounter}`, wrap, onStateEvent, transform) {
      const wrapped = wrap
        ? Object.fromEntries(Object.entries(handlers).map(([step, h]) => [step, wrap(step, h)]))
        : handlers;
      return runLocalExecution(config, job, deps, wrapped, runId, onStateEvent, transform);
    },
    async runJob(jobId, runId = `run-${++runCounter}`, wrap) {
      const other = config.jobs.find((j) => j.id === jobId)!;
      const wrapped = wrap
        ? Object.fromEntries(Object.entries(handlers).map(([step, h]) => [step, wrap(step, h)]))
        : handlers;
      return runLocalExecution(config, other, deps, wrapped, runId);
    },
    async drill(o = {}, runner = {}) {
      const outcome = await sites.drillOutcome(o, runner);
      if (!isReport(outcome)) throw new Error(`drill not due: ${outcome.reason}`);
      return outcome;
    },
    drillOutcome(o, runner = {}) {
      const { jobId = job.id, drillRun = `drill-${++runCounter}`, ...rest } = o;
      const drilled = config.jobs.find((j) => j.id === jobId)!;
      return localDrillRunner(config, drilled, deps, {
        timing: { pollMs: 50 },
        checkWaitMs: 10,
        retryIntervalMs: 0,
        ...runner,
      }).run({ drillRun, ...rest });
    },
    advanceClock(ms) {
      clockOffset += ms;
    },
    liveDisks(name) {
      const vm = objects(source, 'VM').find(([, r]) => r.uuid === vmUuid(name))![1];
      const vbds = new Map(objects(source, 'VBD'));
      return (vm.VBDs as string[])
        .map((ref) => vbds.get(ref)!)
        .filter((vbd) => vbd.type === 'Disk')
        .sort((a, b) => Number(a.userdevice) - Number(b.userdevice))
        .map((vbd) => objects(source, 'VDI').find(([ref]) => ref === vbd.VDI)![1].uuid);
    },
    recoveryPoints(vmName) {
      return objects(destination, 'VM')
        .map(([, r]) => r)
        .filter(
          (r) =>
            r.other_config['xcr:vm'] === vmUuid(vmName) &&
            r.other_config['xcr:status'] === 'complete' &&
            !isCopy(r),
        )
        .sort((a, b) => (b.other_config['xcr:time'] ?? '').localeCompare(a.other_config['xcr:time'] ?? ''));
    },
    rpDiskHashes(rp) {
      return diskHashes(destination, rp);
    },
    exportedSnapshot(vmName) {
      return objects(source, 'VM')
        .map(([, r]) => r)
        .sort((a, b) => (b.other_config['xcr:time'] ?? '').localeCompare(a.other_config['xcr:time'] ?? ''))
        .find(
          (r) =>
            r.is_a_snapshot === true &&
            r.other_config['xcr:vm'] === vmUuid(vmName) &&
            r.other_config['xcr:status'] === 'exported',
        );
    },
    snapshotDiskHashes(snapshot) {
      return diskHashes(source, snapshot);
    },
    assertReplicasMatchSource(vmName) {
      const snap = sites.exportedSnapshot(vmName);
      assert.ok(snap, `exported snapshot of ${vmName}`);
      const rp = sites.recoveryPoints(vmName)[0];
      assert.ok(rp, `recovery point of ${vmName}`);
      assert.equal(
        rp.other_config['xcr:source-snapshot'],
        snap.uuid,
        'recovery point made from the exported snapshot',
      );
      assert.deepEqual(sites.rpDiskHashes(rp), sites.snapshotDiskHashes(snap), `content of ${vmName}`);
    },
    leaks(jobId = job.id) {
      const job = config.jobs.find((j) => j.id === jobId)!;
      const found: string[] = [];
      const src = objects(source, 'VM');
      // Source: only exported snapshots of the job, one per VM, and no orphan snapshot VDIs.
      const perVm = new Map<string, number>();
      for (const [, s] of src) {
        if (String(s.name_label).includes('pending snapshot'))
          found.push(`source VM ${s.uuid} (pending snapshot)`);
        if (s.other_config['xcr:job'] !== job.id || isCopy(s)) continue;
        if (s.other_config['xcr:status'] !== 'exported')
          found.push(`source snapshot ${s.uuid} (${s.other_config['xcr:status']})`);
        perVm.set(s.other_config['xcr:vm']!, (perVm.get(s.other_config['xcr:vm']!) ?? 0) + 1);
      }
      for (const [vm, count] of perVm) if (count > 1) found.push(`${count - 1} extra snapshot(s) of ${vm}`);
      const attachedSrc = new Set(objects(source, 'VBD').map(([, v]) => v.VDI as string));
      for (const [ref, r] of objects(source, 'VDI')) {
        if (r.other_config['xcr:job'] === job.id && !isCopy(r) && !attachedSrc.has(ref))
          found.push(`source VDI ${r.uuid} (orphan)`);
      }
      // Destination: only complete recovery points within retention, every xcr VDI attached to one.
      const replicas = objects(destination, 'VM').filter(
        ([, r]) => r.other_config['xcr:job'] === job.id && !isCopy(r),
      );
      const perVmRp = new Map<string, number>();
      for (const [, r] of replicas) {
        if (r.other_config['xcr:status'] !== 'complete')
          found.push(`replica VM ${r.uuid} (${r.other_config['xcr:status']})`);
        perVmRp.set(r.other_config['xcr:vm']!, (perVmRp.get(r.other_config['xcr:vm']!) ?? 0) + 1);
      }
      for (const [vm, count] of perVmRp)
        if (count > job.retention) found.push(`${count} recovery points of ${vm}`);
      const rpRefs = new Set(replicas.map(([ref]) => ref));
      const attachedToRp = new Set(
        objects(destination, 'VBD')
          .filter(([, v]) => rpRefs.has(v.VM as string))
          .map(([, v]) => v.VDI as string),
      );
      for (const [ref, r] of objects(destination, 'VDI')) {
        if (r.other_config['xcr:job'] === job.id && !isCopy(r) && !attachedToRp.has(ref))
          found.push(`destination VDI ${r.uuid} (stray)`);
      }
      // vTPMs: never orphaned (their VM gone), never more than one per VM.
      for (const pool of [source, destination]) {
        const vms = new Map(pool.test.objects('VM'));
        const perVmTpm = new Map<string, number>();
        for (const [, t] of pool.test.objects('VTPM')) {
          if (!vms.has(t.VM as string)) found.push(`${pool.name} VTPM ${t.uuid} (orphan)`);
          perVmTpm.set(t.VM as string, (perVmTpm.get(t.VM as string) ?? 0) + 1);
        }
        for (const [vm, n] of perVmTpm) if (n > 1) found.push(`${pool.name} VM ${vm} has ${n} VTPMs`);
      }
      for (const pool of [source, destination]) {
        for (const [, t] of objects(pool, 'task')) {
          // the storage manager's own garbage collector task, not something a run made
          if (t.name_label === 'Garbage Collection') continue;
          found.push(`${pool.name} task ${t.name_label} (${t.status})`);
        }
      }
      return found;
    },
    destinationChainDepths() {
      const vdis = destination.test.objects('VDI');
      const byUuid = new Map(vdis.map(([, r]) => [r.uuid as string, r]));
      const depth = (r: Record<string, unknown>): number => {
        const parent = (r.sm_config as Record<string, string>)['vhd-parent'];
        const p = parent ? byUuid.get(parent) : undefined;
        return p ? 1 + depth(p) : 1;
      };
      return vdis.filter(([, r]) => r.managed !== false).map(([, r]) => depth(r));
    },
    assertNoLeaks() {
      assert.deepEqual(sites.leaks(), [], 'leaked objects');
    },
    async close() {
      await Promise.all([source.close(), destination.close()]);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return sites;
}

function diskHashes(pool: SimPool, vm: Rec): [string, string][] {
  const vbds = new Map(pool.test.objects('VBD'));
  const vdis = new Map(pool.test.objects('VDI'));
  return (vm.VBDs as string[])
    .map((ref) => vbds.get(ref)!)
    .filter((vbd) => vbd.type === 'Disk')
    .map(
      (vbd) =>
        [vbd.userdevice as string, pool.test.hashVdi(vdis.get(vbd.VDI as string)!.uuid as string)] as [
          string,
          string,
        ],
    )
    .sort((a, b) => Number(a[0]) - Number(b[0]));
}

async function addNetworkPurpose(pool: SimPool, purpose: string, cert?: string): Promise<void> {
  const xapi = await Xapi.connect({
    url: pool.url,
    username: pool.username,
    password: pool.password,
    ...(cert
      ? { tls: { fingerprint256: new X509Certificate(cert).fingerprint256 } }
      : { allowPlainHttp: true }),
  });
  try {
    for (const ref of (await xapi.getAllRecords('network')).keys()) {
      await xapi.call('network.add_purpose', ref, purpose);
    }
  } finally {
    await xapi.logout();
  }
}
