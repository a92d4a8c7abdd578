/**
 * Reading and writing failover state on the pools: the records (`xcr:failover`), the DR copies and
 * the source fence. Thin over XAPI; every decision is in `rules/failover.ts`.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { KEY } from '../metadata.js';
import { type FailoverRecord, FENCE_PREFIX, formatFailoverRecord, sourceRecord } from '../rules/failover.js';

/** The source VM (not a snapshot) whose failed-back record names `vm`: a failback past its cutover
 *  that has not finished (its record goes last). */
export async function findFailedBack(
  xapi: Xapi,
  jobId: string,
  vm: string,
): Promise<{ ref: string; rec: VmRecord } | undefined> {
  for (const [ref, rec] of await xapi.getAllRecords('VM')) {
    const r = !rec.is_a_snapshot ? sourceRecord(rec, jobId) : undefined;
    if (r?.vm === vm && r.state === 'failed-back') return { ref, rec };
  }
  return undefined;
}

/** Writes the one `xcr:failover` key of a person's VM (remove + add: nothing else of its
 *  other_config changes; a failure between the two loses only this side's record). */
export async function writeRecord(xapi: Xapi, vmRef: string, r: FailoverRecord | undefined): Promise<void> {
  await xapi.call('VM.remove_from_other_config', vmRef, KEY.failover);
  if (r) await xapi.call('VM.add_to_other_config', vmRef, KEY.failover, formatFailoverRecord(r));
}

/** Rewrites the record of a DR copy (xcr's own VM) in one call, so a failure never leaves it without. */
export async function writeCopyRecord(xapi: Xapi, copyRef: string, r: FailoverRecord): Promise<void> {
  const oc = await xapi.call<Record<string, string>>('VM.get_other_config', copyRef);
  await xapi.call('VM.set_other_config', copyRef, { ...oc, [KEY.failover]: formatFailoverRecord(r) });
}

/**
 * The split-brain fence: blocks `start` (and `start_on`) of the source VM with a reason naming the
 * DR copy, keeping whatever start block a person had set to give it back when the fence is lifted.
 */
export async function fenceSource(
  xapi: Xapi,
  vm: { ref: string; rec: VmRecord },
  record: FailoverRecord,
  reason: string,
): Promise<FailoverRecord> {
  const prior = vm.rec.blocked_operations.start;
  const prev =
    sourceRecord(vm.rec, record.job)?.prevStart ?? (prior?.startsWith(FENCE_PREFIX) ? undefined : prior);
  const withPrev: FailoverRecord = { ...record, ...(prev !== undefined ? { prevStart: prev } : {}) };
  await writeRecord(xapi, vm.ref, withPrev);
  await xapi.call('VM.set_blocked_operations', vm.ref, {
    ...vm.rec.blocked_operations,
    start: reason,
    start_on: vm.rec.blocked_operations.start_on ?? reason,
  });
  return withPrev;
}

/** Lifts the fence: our start block goes (a person's earlier one comes back), the record goes. */
export async function liftFence(
  xapi: Xapi,
  vm: { ref: string; rec: VmRecord },
  jobId: string,
): Promise<void> {
  const r = sourceRecord(vm.rec, jobId);
  const blocked = { ...vm.rec.blocked_operations };
  for (const op of ['start', 'start_on']) {
    if (blocked[op]?.startsWith(FENCE_PREFIX)) delete blocked[op];
  }
  if (r?.prevStart !== undefined) blocked.start = r.prevStart;
  await xapi.call('VM.set_blocked_operations', vm.ref, blocked);
  await writeRecord(xapi, vm.ref, undefined);
}
