import { z } from 'zod';
import { FO_ROLE, KEY, parsePendingFailoverName } from '../metadata.js';
import type { Owned } from './ownership.js';

/**
 * Failover rules, pure over plain records. What a failover did is written as one JSON value under
 * `xcr:failover`, on the DR copy (always) and on the source VM (when its pool answers). Failover and
 * failback objects carry `xcr:fo-job` instead of `xcr:job`: the replication sweeps, retention and
 * ownership rules never see them, and only these rules decide what of them is a leftover.
 */
export const failoverRecord = z.strictObject({
  job: z.string(),
  /** The source VM's uuid. */
  vm: z.string(),
  /** The failover run. */
  run: z.string(),
  /** The recovery point the DR copy was cloned from. */
  point: z.string(),
  /** The DR copy's uuid ('' while the source is fenced before the copy exists). */
  copy: z.string(),
  at: z.string(),
  planned: z.boolean(),
  /** fencing: the source is fenced, no copy yet; cutover: the copy is halted and its final state is
   *  in the reverse disks, which go under the original VM next; failed-back: the original VM has the copy's disks
   *  and a recovery point of them exists, what is left is starting it and removing the copy. From the
   *  cutover's end the source VM carries a failed-back record too (removed last), so a retry finishes
   *  the failback even when the copy (and its record) is already gone. */
  state: z.enum(['fencing', 'failed-over', 'cutover', 'failed-back']),
  /** On the source VM: the `start` block it had before the fence (absent: none). */
  prevStart: z.string().optional(),
  /** On the source VM: it was running before a planned failover shut it down. */
  wasRunning: z.boolean().optional(),
  /** On the DR copy: its CBT baseline (a snapshot taken before it started, with CBT on on its
   *  disks; its content is the point's), absent when the failover did not turn CBT on. */
  cbtBaseline: z.string().optional(),
  /** On the DR copy: the failback run that made the reverse disks on the source pool. */
  reverseRun: z.string().optional(),
  /** On the DR copy: the reverse snapshot whose content the reverse disks hold (the next reverse
   *  delta's base), and the failback run that took it. */
  reverseBase: z.string().optional(),
  reverseBaseRun: z.string().optional(),
  /** On the DR copy, from the cutover on: the reverse disks by userdevice, and the original VM's
   *  disks they replace (kept, detached). */
  reverseDisks: z.record(z.string(), z.string()).optional(),
  replaced: z.array(z.string()).optional(),
  /** On the DR copy, from the cutover on, when the original VM is gone: the VM the failback made
   *  on the source pool from a full copy (it takes the original's place in the job). */
  newVm: z.string().optional(),
});
export type FailoverRecord = z.infer<typeof failoverRecord>;

export function parseFailoverRecord(value: string | undefined): FailoverRecord | undefined {
  if (!value) return undefined;
  try {
    const r = failoverRecord.safeParse(JSON.parse(value));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export const formatFailoverRecord = (r: FailoverRecord): string => JSON.stringify(r);

/** The reason on the source VM's blocked `start` while its DR copy runs: the split-brain fence. */
export function fenceReason(r: { copy: string; copyName: string; pool: string; job: string; vm: string }) {
  const copy = r.copy ? `VM ${r.copy} ("${r.copyName}")` : `a copy named "${r.copyName}"`;
  return `xcr failover: this VM now runs at the DR site as ${copy} on pool "${r.pool}"; starting it here would split the brain. Run "xcr failback ${r.job} --vm ${r.vm}" or "xcr failover --undo ${r.job} --vm ${r.vm}".`;
}

export const FENCE_PREFIX = 'xcr failover: ';

export interface FoVm extends Owned {
  ref: string;
  power_state: string;
  is_a_snapshot: boolean;
}

export interface FoVdi extends Owned {
  ref: string;
  /** Refs of the VMs with a VBD to this VDI. */
  vms: string[];
}

const own = (o: Owned, jobId: string) =>
  o.other_config[KEY.foJob] === jobId && o.other_config[KEY.self] === o.uuid;

/** The recorded failover of a DR copy of this job (only the copy's own record: a user's clone of it
 *  carries a foreign `xcr:self`). */
export function copyRecord(vm: FoVm, jobId: string): FailoverRecord | undefined {
  if (vm.is_a_snapshot || !own(vm, jobId) || vm.other_config[KEY.foRole] !== FO_ROLE.copy) return undefined;
  const r = parseFailoverRecord(vm.other_config[KEY.failover]);
  return r?.job === jobId && r.state !== 'fencing' ? r : undefined;
}

/** A source VM's failover record of this job. */
export function sourceRecord(vm: Owned, jobId: string): FailoverRecord | undefined {
  const r = parseFailoverRecord(vm.other_config[KEY.failover]);
  return r?.job === jobId ? r : undefined;
}

/** Source VMs the job must not replicate, with why: a recorded DR copy exists, or the source VM
 *  says it was failed over (either side is enough, so a lost site or a lost record still skips). */
export function failedOverVms(input: {
  jobId: string;
  destination: FoVm[];
  source: (Owned & { is_a_snapshot?: boolean })[];
}): Map<string, string> {
  const out = new Map<string, string>();
  for (const vm of input.destination) {
    const r = copyRecord(vm, input.jobId);
    if (r) out.set(r.vm, `failed over to VM ${vm.uuid} at ${r.at} (failover ${r.run})`);
  }
  for (const vm of input.source) {
    if (vm.is_a_snapshot) continue;
    const r = sourceRecord(vm, input.jobId);
    if (out.has(vm.uuid)) continue;
    if (r?.state === 'failed-over')
      out.set(vm.uuid, `failed over to VM ${r.copy} at ${r.at} (failover ${r.run})`);
    else if (r?.state === 'failed-back')
      out.set(
        vm.uuid,
        `its failback is unfinished (failover ${r.run}): run "xcr failback ${input.jobId} --vm ${r.vm} --planned" again`,
      );
  }
  return out;
}

export type Refusal = { code: string; message: string };

/** Why a failover of one VM must not go ahead, if it must not. */
export function failoverRefusal(o: {
  jobId: string;
  vm: string;
  run: string;
  planned: boolean;
  force: boolean;
  /** The recorded DR copy of this VM, if any, and whether it runs (a halted one is started: the
   *  retry of a failover whose start failed, or of one made with --no-start). */
  existing?: FailoverRecord | undefined;
  existingRunning?: boolean | undefined;
  /** undefined: the source pool does not answer. */
  sourcePowerState?: string | undefined;
}): Refusal | undefined {
  if (o.existing && o.existing.run !== o.run && o.existingRunning !== false)
    return {
      code: 'ALREADY_FAILED_OVER',
      message: `VM ${o.vm} of job ${o.jobId} is already failed over to VM ${o.existing.copy} (failover ${o.existing.run} at ${o.existing.at}); undo it with "xcr failover --undo ${o.jobId} --vm ${o.vm}" or fail back with "xcr failback ${o.jobId} --vm ${o.vm}"`,
    };
  if (o.planned && o.sourcePowerState === undefined)
    return {
      code: 'SOURCE_UNREACHABLE',
      message: `a planned failover shuts VM ${o.vm} down on the source pool, which does not answer; run an unplanned failover (without --planned) from the newest recovery point instead`,
    };
  if (!o.planned && !o.force && o.sourcePowerState === 'Running')
    return {
      code: 'SOURCE_RUNNING',
      message: `VM ${o.vm} is running on the source pool, which answers: an unplanned failover would start a second copy of it (split brain) and lose its writes since the last recovery point. Use --planned to shut it down and move it without losing writes, or --force if the running source must be given up`,
    };
  return undefined;
}

/** Why a failback cannot go ahead, if it cannot. */
export function failbackRefusal(o: {
  jobId: string;
  vm: string;
  planned: boolean;
  copy?: FailoverRecord | undefined;
  /** The failed-back record a failback past its cutover left on the source VM (the retry finishes it). */
  finished?: FailoverRecord | undefined;
  sourceReachable: boolean;
  originalPowerState?: string | undefined;
}): Refusal | undefined {
  if (!o.copy && o.finished?.state !== 'failed-back') return notFailedOver(o.jobId, o.vm, 'failback');
  if (!o.sourceReachable)
    return {
      code: 'SOURCE_UNREACHABLE',
      message: `failback writes to the source pool, which does not answer; the DR copy keeps running`,
    };
  if (o.planned && o.originalPowerState !== undefined && o.originalPowerState !== 'Halted')
    return {
      code: 'ORIGINAL_RUNNING',
      message: `the original VM ${o.vm} is ${o.originalPowerState.toLowerCase()} on the source pool (a forced failover left it so): its disks cannot be replaced while it runs; shut it down (its writes since the failover are given up) and run the failback again`,
    };
  return undefined;
}

/** Why an undo must not go ahead: nothing to undo, or a failback got to its cutover (the original VM
 *  has, or is getting, the DR copy's disks: destroying the copy would lose them). */
export function undoRefusal(o: {
  jobId: string;
  vm: string;
  copy?: FailoverRecord | undefined;
  source?: FailoverRecord | undefined;
}): Refusal | undefined {
  if (!o.copy && !o.source) return notFailedOver(o.jobId, o.vm, 'undo');
  const past = [o.copy, o.source].find((r) => r?.state === 'cutover' || r?.state === 'failed-back');
  if (past)
    return {
      code: 'FAILBACK_UNFINISHED',
      message: `the failback of VM ${o.vm} (job ${o.jobId}) got to its cutover: the source VM has or is getting the DR copy's disks, so it cannot be undone; finish it with "xcr failback ${o.jobId} --vm ${o.vm} --planned"`,
    };
  return undefined;
}

/** What a failback that made a new VM (the original was gone) says about the job: a job by tag
 *  finds the new VM by the tag the failback gave it; a job by uuid must be told. */
export function newVmNotice(
  job: { id: string; vms: { uuids: string[] } | { tag: string } },
  gone: string,
  vm: string,
): string {
  const made = `the original VM ${gone} is gone from the source pool: the failback made VM ${vm} there from a full copy of the DR copy`;
  if ('tag' in job.vms)
    return `${made}; it carries the job's tag "${job.vms.tag}", so job ${job.id} protects it from its next run (the recovery points of ${gone} stay until deleted)`;
  return `${made}; job ${job.id} selects VMs by uuid: in the config's job "${job.id}", change vms.uuids entry "${gone}" to "${vm}", or the job does not protect the new VM (the recovery points of ${gone} stay until deleted)`;
}

export function notFailedOver(jobId: string, vm: string, what: 'undo' | 'failback'): Refusal {
  return {
    code: 'NOT_FAILED_OVER',
    message: `VM ${vm} of job ${jobId} is not failed over (no DR copy recorded on the destination pool), so there is nothing to ${what === 'undo' ? 'undo' : 'fail back'}; see "xcr status ${jobId}"`,
  };
}

export interface FoSweepPlan {
  vms: { ref: string; uuid: string; running: boolean }[];
  vdis: { ref: string; uuid: string }[];
}

/**
 * What crashed failover/failback runs left on one pool: their own objects (`xcr:fo-job` of this job,
 * own `xcr:self`) of a run other than `liveRun` that no record keeps — a copy is kept by its own
 * record, reverse snapshots and reverse disks by the `reverseRun` of a record — and clones still
 * under the pending failover name. A disk goes only when no VM that stays uses it.
 */
export function planFailoverSweep(input: {
  jobId: string;
  liveRun?: string | undefined;
  /** Runs whose objects stay (recorded copies' failover runs and their reverse runs). */
  keep: Set<string>;
  vms: FoVm[];
  vdis: FoVdi[];
}): FoSweepPlan {
  const plan: FoSweepPlan = { vms: [], vdis: [] };
  const gone = new Set<string>();
  const pending = new Set<string>();
  const dead = (run: string | undefined) =>
    run !== undefined && run !== input.liveRun && !input.keep.has(run);
  for (const vm of input.vms) {
    const p = parsePendingFailoverName(vm.name_label ?? '');
    const mine = own(vm, input.jobId) && dead(vm.other_config[KEY.foRun]);
    // a copy (VM.clone) or reverse snapshot (VM.snapshot) not yet tagged: its pending name tells
    const isPending = p?.jobId === input.jobId && dead(p.run);
    if (!mine && !isPending) continue;
    if (isPending && !own(vm, input.jobId)) pending.add(vm.ref);
    gone.add(vm.ref);
    plan.vms.push({
      ref: vm.ref,
      uuid: vm.uuid,
      running: !vm.is_a_snapshot && vm.power_state !== 'Halted',
    });
  }
  for (const vdi of input.vdis) {
    if (!vdi.vms.every((ref) => gone.has(ref))) continue;
    // a reverse disk VDI.create made carries its keys from the start, its self only a call later
    const created =
      vdi.other_config[KEY.foJob] === input.jobId &&
      vdi.other_config[KEY.self] === undefined &&
      vdi.other_config[KEY.foRole] === FO_ROLE.reverseDisk;
    const mine = (own(vdi, input.jobId) || created) && dead(vdi.other_config[KEY.foRun]);
    const ofPending = vdi.vms.length > 0 && vdi.vms.every((ref) => pending.has(ref));
    // a clone of a base disk made by a failback that died before tagging it (VDI.clone copied the
    // base disk's keys, the pending mark included, and its `xcr:self`, which is not the clone's)
    const pendingClone =
      vdi.vms.length === 0 &&
      vdi.other_config[KEY.self] !== vdi.uuid &&
      dead(vdi.other_config[KEY.foPending]) &&
      vdi.other_config[KEY.foJob] === input.jobId;
    if (mine || ofPending || pendingClone) plan.vdis.push({ ref: vdi.ref, uuid: vdi.uuid });
  }
  return plan;
}

/** The runs a sweep keeps: each recorded copy's failover run and its reverse run. */
export function recordedRuns(vms: FoVm[], jobId: string): Set<string> {
  const keep = new Set<string>();
  for (const vm of vms) {
    const r = copyRecord(vm, jobId);
    if (!r) continue;
    keep.add(r.run);
    if (r.reverseRun) keep.add(r.reverseRun);
    if (r.reverseBaseRun) keep.add(r.reverseBaseRun);
  }
  return keep;
}
