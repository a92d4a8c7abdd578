/**
 * xcr's side of the test sites: the config over two pools (given by address, wherever they run:
 * in this process or a simulator process of their own), the local deps and step handlers, and the
 * runs of the synthesized workflows in the local runner.
 */
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
import { runLocalExecution } from './run-local.js';

export interface PoolAddress {
  url: string;
  username: string;
  password: string;
}

export interface LocalJobOptions {
  source: PoolAddress;
  destination: PoolAddress;
  /** Pin the source's certificate by this fingerprint (else the source is plain http). */
  sourceTlsFingerprint?: string;
  /** The VMs the job selects. */
  vmUuids: string[];
  job?: Partial<JobConfig>;
  /** More jobs over the same pools and VMs (ids required), run with `runJob`. */
  extraJobs?: (Partial<JobConfig> & { id: string })[];
}

export type StepWrapper = (step: string, handler: StepHandler) => StepHandler;

export type DrillRequest = Omit<DrillInput, 'jobId'> & { jobId?: string; drillRun?: string };

export interface LocalJob {
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
  /** Removes the state directory (the pools are the caller's). */
  close(): void;
}

let runCounter = 0;

export function localJob(o: LocalJobOptions): LocalJob {
  const jobDefaults = {
    source: { pool: 'a' },
    destination: { pool: 'b', sr: { name: 'Replica storage' } },
    vms: { uuids: o.vmUuids },
    schedule: { rate: '10 minutes' },
    retention: 3,
  };
  const config = parseConfig({
    version: 1,
    pools: {
      a: {
        url: o.source.url,
        username: o.source.username,
        password: { env: 'XCR_TEST_A' },
        ...(o.sourceTlsFingerprint ? { tlsFingerprint: o.sourceTlsFingerprint } : { allowPlainHttp: true }),
      },
      b: {
        url: o.destination.url,
        username: o.destination.username,
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
    env: { XCR_TEST_A: o.source.password, XCR_TEST_B: o.destination.password },
    logger: jsonLogger((line) => logs.push(JSON.parse(line) as Record<string, unknown>)),
    onRunResult: (result) => events.push(result),
  });
  const handlers = createStepHandlers(deps);
  const wrapped = (wrap?: StepWrapper) =>
    wrap ? Object.fromEntries(Object.entries(handlers).map(([step, h]) => [step, wrap(step, h)])) : handlers;

  const local: LocalJob = {
    config,
    job,
    handlers,
    deps,
    leases,
    events,
    logs,
    stateDir,
    run(runId = `run-${++runCounter}`, wrap, onStateEvent, transform) {
      return runLocalExecution(config, job, deps, wrapped(wrap), runId, onStateEvent, transform);
    },
    runJob(jobId, runId = `run-${++runCounter}`, wrap) {
      const other = config.jobs.find((j) => j.id === jobId)!;
      return runLocalExecution(config, other, deps, wrapped(wrap), runId);
    },
    async drill(o = {}, runner = {}) {
      const outcome = await local.drillOutcome(o, runner);
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
    close() {
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return local;
}
