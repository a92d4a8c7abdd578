import { landingNetworks } from '../boot-checks.js';
import { chooseMode, enableCbt, fitDecision, type ModeChoice } from '../cbt-mode.js';
import { chainDepth } from '../chain.js';
import { pruneOldBases } from '../cleanup.js';
import { holdLease, type RunContext } from '../context.js';
import type { DiskPlan, VmRunState, VmWorkItem } from '../contract.js';
import { XcrPermanentError } from '../errors.js';
import { checkFormats, type DiskFormat, detectFormat } from '../image-format.js';
import { findSr, findVmByUuid, vmDisks } from '../inventory.js';
import { KEY } from '../metadata.js';
import { inspectRecoveryPoint, newestRecoveryPoint } from '../recovery-points.js';
import { type DiskDecision, planTransfer } from '../rules/full-or-delta.js';
import { findExportedBase, type KnownSnapshots, takeSourceSnapshot } from '../snapshot.js';
import { createTarget, findTarget, linkTarget } from '../target.js';

/**
 * Snapshots the source VM, finds the base on both sides, decides full or delta per disk and
 * prepares a writable target per disk on the destination. The last recovery point is only read.
 */
export async function snapshotPrevious(ctx: RunContext, item: VmWorkItem): Promise<VmRunState> {
  await holdLease(ctx, item.runId);
  const [source, destination] = await Promise.all([ctx.source(), ctx.destination()]);
  const vm = await findVmByUuid(source, item.vmUuid);
  if (vm.rec.is_a_template || vm.rec.is_a_snapshot || vm.rec.is_control_domain) {
    throw new XcrPermanentError('VM_NOT_REPLICABLE', `${item.vmUuid} is a template, a snapshot or dom0`);
  }
  if (vm.rec.other_config[KEY.job] === ctx.job.id) {
    throw new XcrPermanentError('VM_IS_XCR_REPLICA', `${item.vmUuid} is a replica made by job ${ctx.job.id}`);
  }
  // Before anything is created: every VIF's network must map, a vTPM needs a pool that holds one.
  await landingNetworks(source, destination, ctx, vm.rec);
  // A run that died after its commit may have left an older base behind: only the newest one counts.
  // the snapshot records read once in this step: pruning destroys some and changes none of the others
  const known: KnownSnapshots = new Map();
  const pruned = await pruneOldBases(source, ctx.job.id, vm.rec, known);
  // the VM's snapshot list changed only if a base was pruned
  const current = pruned.length ? (await findVmByUuid(source, item.vmUuid)).rec : vm.rec;
  const base = await findExportedBase(source, ctx.job.id, current, known);
  const srRef = await findSr(destination, ctx.job.destination.sr);
  const live = await vmDisks(source, vm.rec);
  // qcow2 disks need cbt mode and a destination SR with qcow2: refused here, before any snapshot
  await checkFormats(source, destination, ctx.job, live, srRef);
  // CBT must be on before the snapshot, so the snapshot carries a CBT log.
  const enableErrors = ctx.job.enableCbt ? await enableCbt(source, live) : new Map();
  const warnings: string[] = [];
  for (const [userdevice, reason] of enableErrors) {
    warnings.push(`disk ${userdevice}: ${reason}; it uses vhd mode`);
    ctx.logger.warn('could not enable CBT', { vmUuid: item.vmUuid, userdevice, reason });
  }
  const { snapshot, disks } = await takeSourceSnapshot(source, {
    jobId: ctx.job.id,
    runId: item.runId,
    vm,
    time: item.startedAt,
    known,
  });
  const newest = await newestRecoveryPoint(destination, ctx.job.id, item.vmUuid, base?.snapshot.rec);
  const recoveryPoint = newest && (await inspectRecoveryPoint(destination, newest, ctx.job.id, srRef));
  const plan = planTransfer({
    fullInterval: ctx.job.fullInterval,
    disks: disks.map((d) => ({
      userdevice: d.userdevice,
      vdiUuid: d.vdi.rec.uuid,
      virtualSize: d.vdi.rec.virtual_size,
    })),
    base: base?.base,
    recoveryPoint,
  });
  for (const warning of plan.warnings) ctx.logger.warn(warning, { vmUuid: item.vmUuid });

  const choices: { decision: DiskDecision; mode: ModeChoice; format: DiskFormat }[] = [];
  for (const [i, disk] of disks.entries()) {
    const planned = plan.disks[i]!;
    const baseVdi = base?.disks.find((d) => d.vdi.rec.uuid === planned.baseVdi)?.vdi;
    const format = await detectFormat(source, disk.vdi.rec);
    const mode = await chooseMode(source, ctx.job, {
      userdevice: disk.userdevice,
      snapshot: disk.vdi,
      base: planned.kind === 'delta' ? baseVdi : undefined,
      enableError: enableErrors.get(disk.userdevice),
      format: format.format,
    });
    const decision = fitDecision(planned, mode, baseVdi?.rec);
    if (mode.warning) {
      warnings.push(mode.warning);
      ctx.logger.warn(mode.warning, { vmUuid: item.vmUuid, userdevice: disk.userdevice });
    }
    ctx.logger.info('transfer mode chosen', {
      vmUuid: item.vmUuid,
      userdevice: disk.userdevice,
      mode: mode.mode,
      reason: mode.reason,
      kind: decision.kind,
      imageFormat: format.format,
    });
    choices.push({ decision, mode, format });
  }
  const chain = choices.some((c) => c.decision.kind === 'delta') ? plan.chain : 0;

  // one wait budget for all of the VM's disks, so a step stays within its Lambda's 15 minutes
  const waitUntil = Date.now() + ctx.job.chainWaitSec * 1000;
  const chainPolicy = () => ({
    maxDepth: ctx.job.maxChainDepth,
    waitMs: Math.max(0, waitUntil - Date.now()),
    pollMs: Math.min(5000, Math.max(100, ctx.job.chainWaitSec * 50)),
  });
  const planned: DiskPlan[] = [];
  for (const [i, disk] of disks.entries()) {
    const { decision, mode, format } = choices[i]!;
    const found = await findTarget(destination, disk.vdi.rec, {
      jobId: ctx.job.id,
      runId: item.runId,
      vmUuid: item.vmUuid,
      userdevice: disk.userdevice,
    });
    const made = found
      ? { ref: found[0], uuid: found[1].uuid }
      : await createTarget(destination, {
          jobId: ctx.job.id,
          runId: item.runId,
          vmUuid: item.vmUuid,
          time: item.startedAt,
          srRef,
          source: disk,
          decision,
          recoveryPointVdiRef:
            decision.recoveryPointVdi === undefined
              ? undefined
              : recoveryPoint?.vdiRefs.get(decision.recoveryPointVdi),
          chain: chainPolicy(),
          imageFormat: format.format,
        });
    if (made.warning) {
      warnings.push(`disk ${disk.userdevice}: ${made.warning}`);
      ctx.logger.warn(made.warning, { vmUuid: item.vmUuid, userdevice: disk.userdevice });
    }
    if (!found) await linkTarget(source, disk, made.uuid);
    // a full's target is a new VDI.create: no parent, nothing to walk
    const depth = decision.kind === 'full' ? 1 : await chainDepth(destination, made.ref);
    ctx.logger.info('destination VHD chain', { vmUuid: item.vmUuid, userdevice: disk.userdevice, depth });
    planned.push({
      userdevice: disk.userdevice,
      sourceVdi: disk.vdi.rec.uuid,
      baseVdi: decision.baseVdi,
      targetVdi: made.uuid,
      kind: decision.kind,
      fullReason: decision.fullReason,
      virtualSize: disk.vdi.rec.virtual_size,
      bytes: 0,
      done: false,
      mode: mode.mode,
      modeReason: mode.reason,
      chainDepth: depth,
      ...(mode.mode === 'cbt' ? { cursor: 0 } : {}),
      ...(format.format === 'qcow2' ? { imageFormat: 'qcow2' as const } : {}),
    });
  }
  return {
    ...item,
    sourceSnapshot: snapshot.rec.uuid,
    disks: planned,
    chain,
    done: planned.length === 0,
    warnings: [...warnings, ...plan.warnings],
  };
}
