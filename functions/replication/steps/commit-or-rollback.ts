import { landingNetworks } from '../boot-checks.js';
import { destroySnapshotData } from '../cbt-mode.js';
import { pruneOldBases, sweep } from '../cleanup.js';
import { commitRecoveryPoint, markExported } from '../commit.js';
import { holdLease, type RunContext } from '../context.js';
import type { VmResult, VmRunState } from '../contract.js';
import { failureCode } from '../errors.js';
import { findVmByUuid, vmDisks } from '../inventory.js';
import { recordVmResult } from '../run-results.js';

function summary(state: VmRunState, ctx: RunContext) {
  const depths = state.disks.flatMap((d) => (d.chainDepth === undefined ? [] : [d.chainDepth]));
  return {
    vmUuid: state.vmUuid,
    ...(depths.length ? { chainDepth: Math.max(...depths) } : {}),
    bytes: state.disks.reduce((sum, d) => sum + d.bytes, 0),
    durationMs: ctx.now().getTime() - Date.parse(state.startedAt),
    ...(state.disks.length > 0
      ? {
          modes: state.disks.map((d) => ({
            userdevice: d.userdevice,
            mode: d.mode ?? ('vhd' as const),
            ...(d.modeReason ? { reason: d.modeReason } : {}),
          })),
        }
      : {}),
  };
}

/** Destroys everything this run created for this VM on both sides; the last recovery point stays. */
async function rollback(ctx: RunContext, state: VmRunState): Promise<VmResult> {
  const failure = state.failure ?? { Error: 'LEASE_LOST' };
  const { code, message } = failureCode(failure);
  const thisRun = { run: state.runId, vm: state.vmUuid };
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const dst = await sweep(destination, ctx.job.id, thisRun);
  const src = await sweep(source, ctx.job.id, thisRun);
  ctx.logger.error('VM replication failed and was rolled back', {
    vmUuid: state.vmUuid,
    errorCode: code,
    error: message,
    removed: [...src.destroyed, ...dst.destroyed],
  });
  return { ...summary(state, ctx), status: 'failed', errorCode: code, message, warnings: state.warnings };
}

async function commit(ctx: RunContext, state: VmRunState): Promise<VmResult> {
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const [vm, snapshot] = await Promise.all([
    findVmByUuid(source, state.vmUuid),
    source.getByUuid('VM', state.sourceSnapshot!).then(async (ref) => ({
      ref,
      rec: await source.getRecord('VM', ref),
    })),
  ]);
  const [sourceDisks, targets] = await Promise.all([
    vmDisks(source, snapshot.rec),
    Promise.all(state.disks.map((plan) => destination.getByUuid('VDI', plan.targetVdi))),
  ]);
  const disks = state.disks.map((plan, i) => ({
    source: sourceDisks.find((d) => d.userdevice === plan.userdevice)!,
    target: targets[i]!,
  }));
  const landing = await landingNetworks(source, destination, ctx, snapshot.rec);
  const rp = await commitRecoveryPoint(source, destination, {
    jobId: ctx.job.id,
    runId: state.runId,
    time: state.startedAt,
    chain: state.chain,
    sourceVm: vm.rec,
    sourceSnapshot: snapshot,
    disks,
    networks: landing.networks,
    known: { vifs: landing.vifs },
  });
  const exported = await markExported(source, snapshot, state.chain, rp.rec.uuid);
  // the VM's snapshot list as read above: this step takes no snapshot and deletes none before here
  const prunedBases = await pruneOldBases(source, ctx.job.id, vm.rec, new Map([[snapshot.ref, exported]]));
  const warnings = [...state.warnings];
  if (ctx.job.cbtDestroySnapshotData) {
    const cbtDisks = new Set(state.disks.filter((d) => d.mode === 'cbt').map((d) => d.userdevice));
    const problems = await destroySnapshotData(
      source,
      sourceDisks.filter((d) => cbtDisks.has(d.userdevice)),
    );
    for (const p of problems) {
      warnings.push(p);
      ctx.logger.warn(p, { vmUuid: state.vmUuid });
    }
  }
  // Retention runs once per run in finish-run (one listing of the destination, not one per VM).
  ctx.logger.info('recovery point committed', {
    vmUuid: state.vmUuid,
    recoveryPoint: rp.rec.uuid,
    prunedBases,
  });
  const allFull = state.disks.every((d) => d.kind === 'full');
  return {
    ...summary(state, ctx),
    status: 'succeeded',
    kind: allFull ? 'full' : 'delta',
    recoveryPoint: rp.rec.uuid,
    warnings,
  };
}

async function commitOrRollbackVm(ctx: RunContext, state: VmRunState): Promise<VmResult> {
  if (state.failure || !state.done) return rollback(ctx, state);
  try {
    await holdLease(ctx, state.runId);
  } catch (err) {
    return rollback(ctx, {
      ...state,
      failure: { Error: (err as Error).name, Cause: (err as Error).message },
    });
  }
  return commit(ctx, state);
}

/**
 * Commits a VM whose disks are all transferred, or rolls it back when a step failed, and records
 * the outcome in the run store (a failure of this step goes through the state machine's Catch,
 * and the rollback after it records its own outcome).
 */
export async function commitOrRollback(ctx: RunContext, state: VmRunState): Promise<VmResult> {
  const result = await commitOrRollbackVm(ctx, state);
  await recordVmResult(ctx.runs, ctx.logger, state, result);
  return result;
}
