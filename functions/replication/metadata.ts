/**
 * How xcr marks what it owns. The hypervisor is the source of truth: every object a run creates
 * carries these `other_config` keys, so any step can resume or clean up after a crash without a
 * database. Keys are prefixed `xcr:` so they never collide with other tools.
 */
export const KEY = {
  job: 'xcr:job',
  vm: 'xcr:vm',
  run: 'xcr:run',
  role: 'xcr:role',
  status: 'xcr:status',
  time: 'xcr:time',
  chain: 'xcr:chain',
  sourceSnapshot: 'xcr:source-snapshot',
  sourceVdi: 'xcr:source-vdi',
  userdevice: 'xcr:userdevice',
  /** The object's own uuid, written when the object is created or tagged (pending objects too):
   *  VM.clone / VDI.copy copy other_config but not the uuid, so a user's copy is told apart. */
  self: 'xcr:self',
  /** On an exported source snapshot: the uuid of the recovery point made from it, so the next run
   *  finds the delta's destination base by uuid instead of listing the destination's VMs. */
  recoveryPoint: 'xcr:recovery-point',
  /** On a source snapshot's disk: the uuid of the destination VDI this run writes it into, so a
   *  repeated snapshot-previous finds its target by uuid instead of listing the destination's VDIs. */
  target: 'xcr:target',
  /** On a drill clone and its disks: the drill run that made them. */
  drillRun: 'xcr:drill-run',
  /** On a drill clone: the uuid of the recovery point it was cloned from (retention keeps that point). */
  drillOf: 'xcr:drill-of',
  /** On a recovery point: the last drill's result, `passed <iso time> <boot s>s` or `failed <iso time>: <reason>`
   *  — the one key a drill writes on a complete recovery point (never its disks or configuration). */
  drill: 'xcr:drill',
  /** What a failover did (a JSON `FailoverRecord`, rules/failover.ts): on the source VM where reachable
   *  and on the DR copy. Failover objects carry no `xcr:job`, so replication sweeps never touch them. */
  failover: 'xcr:failover',
  /** On a failover/failback object: the job, its role and the failover/failback run that made it. */
  foJob: 'xcr:fo-job',
  foRole: 'xcr:fo-role',
  foRun: 'xcr:fo-run',
  /** On a base snapshot's disk while a failback clones it (with `xcr:fo-job`): the failback run. */
  foPending: 'xcr:fo-pending',
} as const;

/** Roles of what failover and failback create (`xcr:fo-role`). */
export const FO_ROLE = {
  /** The DR copy: a clone of a recovery point, started at the destination. */
  copy: 'copy',
  copyDisk: 'copy-disk',
  /** A snapshot of the DR copy taken by a failback: the base of the next reverse delta. */
  reverseSnapshot: 'reverse-snapshot',
  reverseSnapshotDisk: 'reverse-snapshot-disk',
  /** A snapshot of the DR copy taken by the failover before the copy starts, once CBT is on on its
   *  disks: the start of the CBT log chain a failback lists the copy's changed blocks from. */
  cbtBaseline: 'cbt-baseline',
  cbtBaselineDisk: 'cbt-baseline-disk',
  /** On the source pool: a clone of the base snapshot's disk receiving the DR copy's delta. */
  reverseDisk: 'reverse-disk',
  /** On the source pool: the VM a failback makes when the original VM is gone (until its cutover ends). */
  newVm: 'new-vm',
} as const;

export const ROLE = {
  /** A snapshot of a source VM taken by a run (VM and its VDIs). */
  sourceSnapshot: 'source-snapshot',
  /** A replica VM on the destination: a recovery point once complete. */
  recoveryPoint: 'recovery-point',
  /** A disk of a recovery point (or the writable target being filled by a run). */
  replicaDisk: 'replica-disk',
  /** A clone of a recovery point booted by a drill, and its disks: destroyed when the drill ends. */
  drill: 'drill',
  drillDisk: 'drill-disk',
} as const;

export const STATUS = {
  pending: 'pending',
  /** Source snapshot whose content reached the destination: the base of the next delta. */
  exported: 'exported',
  /** Recovery point fully written and verified. */
  complete: 'complete',
} as const;

export const REPLICA_TAG = 'xcr';

export const START_BLOCKED_REASON =
  'xcr replica (a recovery point): starting it is blocked; clone it (VM.clone / "xcr clone") and start the clone.';

/** Label of a snapshot between VM.snapshot and tagging: lets a re-run or a sweep find it by run id. */
export function pendingSnapshotName(jobId: string, runId: string): string {
  return `[xcr:${jobId}:${runId}] pending snapshot`;
}

export function parsePendingSnapshotName(name: string): { jobId: string; runId: string } | undefined {
  const m = /^\[xcr:([^:\]]+):([^\]]+)\] pending snapshot$/.exec(name);
  return m ? { jobId: m[1]!, runId: m[2]! } : undefined;
}

/** Label of a drill clone between VM.clone and tagging (it still carries the recovery point's keys). */
export function pendingDrillName(jobId: string, drillRun: string): string {
  return `[xcr-drill:${jobId}:${drillRun}] pending clone`;
}

export function parsePendingDrillName(name: string): { jobId: string; drillRun: string } | undefined {
  const m = /^\[xcr-drill:([^:\]]+):([^\]]+)\] pending clone$/.exec(name);
  return m ? { jobId: m[1]!, drillRun: m[2]! } : undefined;
}

/** Label of a DR copy between VM.clone and tagging (it still carries the recovery point's keys). */
export function pendingFailoverName(jobId: string, run: string): string {
  return `[xcr-failover:${jobId}:${run}] pending copy`;
}

export function parsePendingFailoverName(name: string): { jobId: string; run: string } | undefined {
  const m = /^\[xcr-failover:([^:\]]+):([^\]]+)\] pending copy$/.exec(name);
  return m ? { jobId: m[1]!, run: m[2]! } : undefined;
}

export function snapshotName(jobId: string, vmName: string, time: string): string {
  return `[xcr ${jobId}] ${vmName} ${time}`;
}

export function recoveryPointName(jobId: string, vmName: string, time: string): string {
  return `${vmName} (xcr ${jobId} ${time})`;
}

/** `2026-11-26T18:40:00.000Z` → `2026-11-26 18:40:00Z` for names people read. */
export function readableTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export type OtherConfig = Record<string, string>;
