import type { VbdRecord, VmRecord, Xapi } from '../xapi/index.js';
import { destroyVmWithDisks } from './destroy.js';
import { KEY, parsePendingSnapshotName, ROLE, STATUS } from './metadata.js';
import { isCompleteRecoveryPoint } from './recovery-points.js';
import { jobSnapshots } from './snapshot.js';
import { mergeOtherConfig } from './tagging.js';

/**
 * Removing what runs left behind. The same code serves the rollback of a failed run (`match` = that
 * run) and the sweep at the start of the next run (`match` = any other run of the job). Whatever is a
 * valid recovery point, or the exported base of the next delta, is never touched.
 */
export type RunMatch = (runId: string | undefined, vmUuid: string | undefined) => boolean;

export interface SweepReport {
  destroyed: string[];
  promoted: string[];
}

function runOf(oc: Record<string, string>, name?: string, jobId?: string): string | undefined {
  if (oc[KEY.run]) return oc[KEY.run];
  const pending = name ? parsePendingSnapshotName(name) : undefined;
  return pending && pending.jobId === jobId ? pending.runId : undefined;
}

function attachedVdis(vms: Iterable<VmRecord>, vbds: Map<string, VbdRecord>): Set<string> {
  const out = new Set<string>();
  for (const vm of vms) {
    for (const ref of vm.VBDs) {
      const vdi = vbds.get(ref)?.VDI;
      if (vdi && vdi !== 'OpaqueRef:NULL') out.add(vdi);
    }
  }
  return out;
}

/** Destination: unfinished replica VMs and target VDIs of matching runs. */
export async function sweepDestination(xapi: Xapi, jobId: string, match: RunMatch): Promise<SweepReport> {
  const [vms, vdis, vbds] = await Promise.all([
    xapi.getAllRecords('VM'),
    xapi.getAllRecords('VDI'),
    xapi.getAllRecords('VBD'),
  ]);
  const complete = [...vms.values()].filter((vm) => isCompleteRecoveryPoint(vm, jobId));
  const protectedVdis = attachedVdis(complete, vbds);
  const destroyed: string[] = [];
  for (const [ref, vm] of vms) {
    const oc = vm.other_config;
    if (oc[KEY.job] !== jobId || oc[KEY.role] !== ROLE.recoveryPoint || isCompleteRecoveryPoint(vm, jobId))
      continue;
    if (!match(oc[KEY.run], oc[KEY.vm])) continue;
    await xapi.destroy('VM', ref);
    destroyed.push(`VM ${vm.uuid}`);
  }
  for (const [ref, vdi] of vdis) {
    const oc = vdi.other_config;
    if (oc[KEY.job] !== jobId || oc[KEY.role] !== ROLE.replicaDisk || vdi.is_a_snapshot) continue;
    if (protectedVdis.has(ref) || !match(oc[KEY.run], oc[KEY.vm])) continue;
    await xapi.destroy('VDI', ref);
    destroyed.push(`VDI ${vdi.uuid}`);
  }
  return { destroyed, promoted: [] };
}

/**
 * Source: pending snapshots of matching runs (and their disks). A pending snapshot whose recovery
 * point did complete (the run died between the two commits) is promoted to exported instead, so
 * the next run stays a delta.
 */
export async function sweepSource(
  xapi: Xapi,
  jobId: string,
  match: RunMatch,
  completedSnapshots: Map<string, number> = new Map(),
): Promise<SweepReport> {
  const [vms, vdis] = await Promise.all([xapi.getAllRecords('VM'), xapi.getAllRecords('VDI')]);
  const report: SweepReport = { destroyed: [], promoted: [] };
  for (const [ref, vm] of vms) {
    if (!vm.is_a_snapshot) continue;
    const oc = vm.other_config;
    const run = runOf(oc, vm.name_label, jobId);
    const ours = oc[KEY.job] === jobId || run !== undefined;
    if (!ours || oc[KEY.status] === STATUS.exported || !match(run, oc[KEY.vm])) continue;
    const chain = completedSnapshots.get(vm.uuid);
    if (chain !== undefined) {
      await mergeOtherConfig(xapi, 'VM', ref, oc, {
        [KEY.status]: STATUS.exported,
        [KEY.chain]: String(chain),
      });
      report.promoted.push(`VM ${vm.uuid}`);
      continue;
    }
    await destroyVmWithDisks(xapi, ref);
    report.destroyed.push(`VM ${vm.uuid}`);
  }
  for (const [ref, vdi] of vdis) {
    const oc = vdi.other_config;
    if (!vdi.is_a_snapshot || oc[KEY.job] !== jobId || oc[KEY.role] !== ROLE.sourceSnapshot) continue;
    if (vdi.VBDs.length > 0 || !match(oc[KEY.run], oc[KEY.vm])) continue;
    await xapi.destroy('VDI', ref);
    report.destroyed.push(`VDI ${vdi.uuid}`);
  }
  return report;
}

/** Source snapshots that complete recovery points were made from, with the chain length of each. */
export async function snapshotsWithRecoveryPoints(dest: Xapi, jobId: string): Promise<Map<string, number>> {
  const vms = await dest.getAllRecords('VM');
  const out = new Map<string, number>();
  for (const vm of vms.values()) {
    if (!isCompleteRecoveryPoint(vm, jobId)) continue;
    const snap = vm.other_config[KEY.sourceSnapshot];
    if (snap) out.set(snap, Number(vm.other_config[KEY.chain] ?? 0) || 0);
  }
  return out;
}

/** Keeps only the newest exported snapshot of a source VM (the next delta's base). */
export async function pruneOldBases(xapi: Xapi, jobId: string, vm: VmRecord): Promise<string[]> {
  const exported = (await jobSnapshots(xapi, jobId, vm)).filter(
    (s) => s.rec.other_config[KEY.status] === STATUS.exported,
  );
  const old = exported.slice(1);
  for (const s of old) await destroyVmWithDisks(xapi, s.ref);
  return old.map((s) => s.rec.uuid);
}
