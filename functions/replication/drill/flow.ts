/**
 * The drill workflow's steps over payloads (`contract.ts`): select-points → (per point, a Map
 * iteration) clone-point → isolate → boot → check ⟲ → teardown, then report. The state machine
 * and the local runner call them; the XAPI work is in `steps.ts`, every decision in
 * `rules/drill.ts`. Every step before teardown renews the drill's own lease (`drill:<job>`), never
 * the job's, so a drill neither blocks nor is blocked by a replication run.
 */
import type { DrillConfig } from '../../config/schema.js';
import type { RunContext } from '../context.js';
import { failureCode, XcrPermanentError } from '../errors.js';
import { listRecoveryPoints } from '../recovery-points.js';
import { drillDueAfterRuns, formatDrillResult, pointsToDrill } from '../rules/drill.js';
import type {
  DrillItem,
  DrillPointResult,
  DrillPointStep,
  DrillReport,
  ReportInput,
  SelectPointsInput,
  SelectPointsOutput,
} from './contract.js';
import { DRILL_DEFAULTS, drillLeaseKey } from './lease.js';
import { boot, clonePoint, isolate, recordResult, waitForCheck } from './steps.js';
import { removeDrillClones } from './teardown.js';

export interface DrillTiming {
  /** Between two looks at the guest. @default 2000 */
  pollMs?: number;
  /** How long one check invocation polls before it hands back to the Wait. @default 60000 */
  sliceMs?: number;
}

const config = (ctx: RunContext): DrillConfig => ctx.job.drill ?? DRILL_DEFAULTS;

/** Longest a drill may go without a step renewing its lease: one check slice or boot, with margin. */
export const drillLeaseTtlMs = (cfg: DrillConfig) => (cfg.timeoutMinutes + 15) * 60_000;

/** Takes or renews the drill lease; a drill that lost it (expired, swept) stops before it writes. */
async function holdDrillLease(ctx: RunContext, drillRun: string): Promise<void> {
  const lease = await ctx.leases.acquire(drillLeaseKey(ctx.job.id), drillRun, drillLeaseTtlMs(config(ctx)));
  if (!lease.acquired)
    throw new XcrPermanentError(
      'DRILL_RUNNING',
      `${lease.holder} holds the drill lease of job ${ctx.job.id} until ${lease.expiresAt.toISOString()} (another drill, or a run sweeping drill leftovers)`,
    );
}

/** select-points: is a drill due (after a run), the drill lease, leftovers of crashed drills, the points. */
export async function selectPoints(ctx: RunContext, input: SelectPointsInput): Promise<SelectPointsOutput> {
  const { drillRun, request } = input;
  const cfg = config(ctx);
  const dest = await ctx.destination();
  const base = { jobId: ctx.job.id, drillRun, points: [], removed: 0 };
  if (request.afterRun) {
    if (!('afterRuns' in cfg.every))
      return { ...base, due: false, reason: 'drill.every is a schedule, not afterRuns' };
    const rps = await listRecoveryPoints(dest, ctx.job.id);
    const due = drillDueAfterRuns(
      rps.map((r) => r.rec),
      cfg.every.afterRuns,
    );
    if (!due.due) return { ...base, due: false, reason: due.reason };
    // A drill still running (or a sweep) already covers these runs: not a failure of this one.
    const lease = await ctx.leases.acquire(drillLeaseKey(ctx.job.id), drillRun, drillLeaseTtlMs(cfg));
    if (!lease.acquired) return { ...base, due: false, reason: `${lease.holder} holds the drill lease` };
  }
  await holdDrillLease(ctx, drillRun);
  const removed = await removeDrillClones(dest, ctx.job.id, { liveRun: drillRun });
  const rps = await listRecoveryPoints(dest, ctx.job.id);
  const points = pointsToDrill(
    rps.map((r) => r.rec),
    request,
  );
  if (points.length === 0)
    throw new XcrPermanentError(
      'NO_RECOVERY_POINT',
      request.point
        ? `${request.point} is not a complete recovery point of job ${ctx.job.id} (see "xcr recovery-points")`
        : `job ${ctx.job.id} has no complete recovery point${request.vm ? ` of VM ${request.vm}` : ''} to drill yet`,
    );
  return {
    ...base,
    due: true,
    points: points.map((p) => ({ recoveryPoint: p.uuid, vm: p.other_config['xcr:vm'] ?? '' })),
    removed: removed.length,
  };
}

/** clone-point: VM.clone of the point, the clone and its disks tagged as this drill's. */
export async function clonePointStep(ctx: RunContext, item: DrillItem): Promise<DrillItem> {
  await holdDrillLease(ctx, item.drillRun);
  const clone = await clonePoint(await ctx.destination(), ctx.job.id, item.drillRun, item.recoveryPoint);
  return { ...item, clone };
}

const needClone = (item: DrillItem): string => {
  if (!item.clone) throw new XcrPermanentError('DRILL_INPUT', 'this step needs clone-point’s output (clone)');
  return item.clone;
};

/** isolate: VIFs removed, or moved to the isolated network with fresh MACs. */
export async function isolateStep(ctx: RunContext, item: DrillItem): Promise<DrillItem> {
  await holdDrillLease(ctx, item.drillRun);
  await isolate(await ctx.destination(), ctx.job.id, item.drillRun, needClone(item), config(ctx).network);
  return { ...item, isolated: true };
}

/** boot: the clone's start unblocked and VM.start; boot seconds count from here. */
export async function bootStep(ctx: RunContext, item: DrillItem): Promise<DrillItem> {
  await holdDrillLease(ctx, item.drillRun);
  if (!item.isolated) throw new XcrPermanentError('DRILL_INPUT', 'boot needs isolate’s output (isolated)');
  const bootStartedAt = ctx.now().toISOString();
  await boot(await ctx.destination(), ctx.job.id, item.drillRun, needClone(item));
  return { ...item, bootStartedAt };
}

/**
 * check: polls the guest for one slice. `done: true` when the check passed; `done: false` when
 * the slice ended first (the state machine waits and checks again); an error when the clone
 * stopped or `timeoutMinutes` passed (the Catch sends the point to teardown).
 */
export async function checkStep(
  ctx: RunContext,
  item: DrillItem,
  timing: DrillTiming = {},
): Promise<DrillItem> {
  await holdDrillLease(ctx, item.drillRun);
  if (!item.bootStartedAt)
    throw new XcrPermanentError('DRILL_INPUT', 'check needs boot’s output (bootStartedAt)');
  const cfg = config(ctx);
  const startedAt = Date.parse(item.bootStartedAt);
  const now = () => ctx.now().getTime();
  const r = await waitForCheck(await ctx.destination(), needClone(item), cfg.check, {
    pollMs: timing.pollMs ?? 2000,
    now,
    startedAt,
    deadline: startedAt + cfg.timeoutMinutes * 60_000,
    until: now() + (timing.sliceMs ?? 60_000),
  });
  if (r.state === 'passed') return { ...item, done: true, bootSeconds: r.bootSeconds };
  if (r.state === 'waiting') return { ...item, done: false };
  throw new XcrPermanentError(r.state === 'failed' ? 'DRILL_GUEST_STOPPED' : 'DRILL_CHECK_TIMEOUT', r.reason);
}

/** The step an item failed in: the first whose output it lacks. */
function failedStep(item: DrillItem): DrillPointStep {
  if (!item.clone) return 'clone-point';
  if (!item.isolated) return 'isolate';
  if (!item.bootStartedAt) return 'boot';
  return 'check';
}

/** teardown: this point's clone stopped and destroyed with its disks, whatever failed; the result recorded. */
export async function teardownStep(ctx: RunContext, item: DrillItem): Promise<DrillPointResult> {
  const dest = await ctx.destination();
  const removed = await removeDrillClones(dest, ctx.job.id, {
    only: item.drillRun,
    point: item.recoveryPoint,
  });
  const passed = item.done === true && !item.failure;
  const base = { recoveryPoint: item.recoveryPoint, vm: item.vm, removed };
  const result: DrillPointResult = passed
    ? { ...base, passed: true, bootSeconds: item.bootSeconds ?? 0 }
    : {
        ...base,
        passed: false,
        step: failedStep(item),
        reason: item.failure ? failureCode(item.failure).message : 'the check never passed',
      };
  const at = ctx.now().toISOString();
  // A point deleted meanwhile (by hand: retention keeps a drilled one) has nowhere to keep the result.
  await recordResult(
    dest,
    item.recoveryPoint,
    formatDrillResult(
      result.passed
        ? { passed: true, at, bootSeconds: result.bootSeconds ?? 0 }
        : { passed: false, at, reason: `${result.step}: ${result.reason}` },
    ),
  ).catch((err: unknown) => {
    const code = (err as { code?: string }).code;
    if (code !== 'UUID_INVALID' && code !== 'HANDLE_INVALID') throw err;
    ctx.logger.warn('drill result not recorded: the recovery point is gone', {
      recoveryPoint: item.recoveryPoint,
    });
  });
  return result;
}

/**
 * report: whatever is left of this drill removed (a failed Map, a teardown that died), the lease
 * released, the event `xcr drill passed|failed` published.
 */
export async function reportDrill(ctx: RunContext, input: ReportInput): Promise<DrillReport> {
  const { drillRun, state } = input;
  const results = state.results ?? [];
  const removed = results.flatMap((r) => r.removed);
  try {
    // A drill that never got the lease (DRILL_RUNNING) made nothing: `only` keeps the sweep to its own.
    removed.push(...(await removeDrillClones(await ctx.destination(), ctx.job.id, { only: drillRun })));
  } finally {
    await ctx.leases.release(drillLeaseKey(ctx.job.id), drillRun);
  }
  const failure = state.failure ? failureCode(state.failure).message : undefined;
  const failedPoint = results.find((r) => !r.passed);
  const passed = !failure && results.length > 0 && !failedPoint;
  const report: DrillReport = {
    jobId: ctx.job.id,
    drillRun,
    status: passed ? 'passed' : 'failed',
    ...(passed
      ? {}
      : {
          reason:
            failure ?? (failedPoint ? `${failedPoint.step}: ${failedPoint.reason}` : 'no point drilled'),
        }),
    results,
    removed,
  };
  await ctx.events.publishDrill?.(report);
  ctx.logger.info(`drill ${report.status}`, { drillRun, points: results.length, reason: report.reason });
  return report;
}
