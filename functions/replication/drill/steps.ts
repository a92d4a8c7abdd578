/**
 * The drill's steps, thin over XAPI: every decision is in `rules/drill.ts`. Each step works on one
 * clone and is idempotent by the clone's own keys, so a retried or resumed step finds what an
 * earlier attempt made.
 */
import type { DrillConfig } from '../../config/schema.js';
import type { VmRecord, Xapi } from '../../xapi/index.js';
import { XcrPermanentError } from '../errors.js';
import { findVmByUuid, vmDisks } from '../inventory.js';
import { KEY, pendingDrillName, ROLE } from '../metadata.js';
import { drillRunOf } from '../rules/drill.js';

const NULL = 'OpaqueRef:NULL';

const withoutXcr = (m: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('xcr:')));

/** clone-point: VM.clone of the recovery point under a pending name, then the clone and its disks
 *  get their own keys (role, job, drill run, the point it is of, their own uuid as xcr:self). */
export async function clonePoint(
  xapi: Xapi,
  jobId: string,
  drillRun: string,
  rpUuid: string,
): Promise<string> {
  const rp = await findVmByUuid(xapi, rpUuid);
  if (rp.rec.other_config[KEY.role] !== ROLE.recoveryPoint || rp.rec.other_config[KEY.job] !== jobId)
    throw new XcrPermanentError(
      'NOT_A_RECOVERY_POINT',
      `VM ${rpUuid} is not a recovery point of job ${jobId}`,
    );
  const ref = await xapi.callAsync<string>('VM.clone', rp.ref, pendingDrillName(jobId, drillRun));
  const rec = await xapi.getRecord('VM', ref);
  for (const d of await vmDisks(xapi, rec)) {
    await xapi.call('VDI.set_other_config', d.vdi.ref, {
      ...withoutXcr(d.vdi.rec.other_config),
      [KEY.job]: jobId,
      [KEY.role]: ROLE.drillDisk,
      [KEY.drillRun]: drillRun,
      [KEY.self]: d.vdi.rec.uuid,
    });
  }
  await xapi.call('VM.set_other_config', ref, {
    ...withoutXcr(rec.other_config),
    [KEY.job]: jobId,
    [KEY.role]: ROLE.drill,
    [KEY.drillRun]: drillRun,
    [KEY.drillOf]: rpUuid,
    [KEY.self]: rec.uuid,
  });
  await xapi.call(
    'VM.set_name_label',
    ref,
    `${rp.rec.name_label.replace(/ \(xcr .*\)$/, '')} (xcr drill ${drillRun})`,
  );
  await xapi.call('VM.set_tags', ref, []);
  return rec.uuid;
}

/** A drill clone of this drill run, or an error: no step ever touches anything else. */
async function ownClone(xapi: Xapi, jobId: string, drillRun: string, uuid: string) {
  const vm = await findVmByUuid(xapi, uuid);
  if (drillRunOf({ ...vm.rec, ref: vm.ref }, jobId) !== drillRun || vm.rec.other_config[KEY.self] !== uuid)
    throw new XcrPermanentError('NOT_A_DRILL_CLONE', `VM ${uuid} is not a clone of drill ${drillRun}`);
  return vm;
}

async function findNetwork(xapi: Xapi, sel: Exclude<DrillConfig['network'], 'none'>): Promise<string> {
  for (const [ref, n] of await xapi.getAllRecords('network')) {
    if ('uuid' in sel ? n.uuid === sel.uuid : n.name_label === sel.name) return ref;
  }
  throw new XcrPermanentError(
    'DRILL_NETWORK_NOT_FOUND',
    `drill.network ${JSON.stringify(sel)} is not a network of the destination pool; name an isolated network there, or "none"`,
  );
}

/** isolate: `none` removes every VIF; a network replaces each VIF by one on it with a fresh MAC
 *  (MAC "" lets xapi generate one), so the clone can never answer on a production address. */
export async function isolate(
  xapi: Xapi,
  jobId: string,
  drillRun: string,
  uuid: string,
  network: DrillConfig['network'],
) {
  const vm = await ownClone(xapi, jobId, drillRun, uuid);
  const target = network === 'none' ? undefined : await findNetwork(xapi, network);
  for (const vifRef of vm.rec.VIFs) {
    const vif = await xapi.getRecord('VIF', vifRef);
    if (vif.network === target && vif.other_config?.[KEY.drillRun] === drillRun) continue;
    await xapi.destroy('VIF', vifRef);
    if (!target) continue;
    await xapi.callAsync('VIF.create', {
      device: vif.device,
      network: target,
      VM: vm.ref,
      MAC: '',
      MTU: String(vif.MTU),
      other_config: { [KEY.drillRun]: drillRun },
      qos_algorithm_type: '',
      qos_algorithm_params: {},
      locking_mode: 'network_default',
      ipv4_allowed: [],
      ipv6_allowed: [],
    });
  }
}

/** boot: clears the start block on the clone (never on the recovery point: ownClone) and starts it. */
export async function boot(xapi: Xapi, jobId: string, drillRun: string, uuid: string): Promise<void> {
  const vm = await ownClone(xapi, jobId, drillRun, uuid);
  if (vm.rec.power_state === 'Running') return;
  await xapi.call('VM.set_blocked_operations', vm.ref, {});
  await xapi.callAsync('VM.start', vm.ref, false, false);
}

export type CheckState = { done: true } | { done: false; why: string } | { failed: string };

/** One look at the clone for the check: tools = guest metrics with PV drivers or an OS version;
 *  xenstore = the key the guest wrote (xenopsd copies vm-data/ into VM.xenstore_data). */
export async function checkOnce(xapi: Xapi, uuid: string, check: DrillConfig['check']): Promise<CheckState> {
  const ref = await xapi.getByUuid('VM', uuid);
  const vm = (await xapi.getRecord('VM', ref)) as VmRecord & { guest_metrics?: string };
  if (vm.power_state !== 'Running')
    return { failed: `the clone is ${vm.power_state.toLowerCase()} (it crashed or was stopped)` };
  if (check === 'tools') {
    const gm = vm.guest_metrics ?? NULL;
    if (gm === NULL) return { done: false, why: 'no guest metrics (guest tools never reported)' };
    const rec = (await xapi.call('VM_guest_metrics.get_record', gm)) as Record<string, unknown>;
    const os = (rec.os_version ?? {}) as Record<string, string>;
    if (rec.PV_drivers_detected === true || Object.keys(os).length > 0) return { done: true };
    return { done: false, why: 'guest metrics show neither PV drivers nor an OS version' };
  }
  if (vm.xenstore_data[check.xenstore] !== undefined) return { done: true };
  return { done: false, why: `the guest never wrote ${check.xenstore}` };
}

export type CheckOutcome =
  | { state: 'passed'; bootSeconds: number }
  | { state: 'waiting' }
  | { state: 'failed' | 'timed-out'; reason: string };

/**
 * check: polls until the check passes (boot seconds since `startedAt`), the clone stops, the
 * drill's `deadline`, or the end of this call's slice (`until`: one Lambda invocation polls for a
 * while, so a long boot costs few state transitions).
 */
export async function waitForCheck(
  xapi: Xapi,
  uuid: string,
  check: DrillConfig['check'],
  o: { pollMs: number; now: () => number; startedAt: number; deadline: number; until: number },
): Promise<CheckOutcome> {
  for (;;) {
    const s = await checkOnce(xapi, uuid, check);
    if ('failed' in s) return { state: 'failed', reason: s.failed };
    const now = o.now();
    if (s.done) return { state: 'passed', bootSeconds: Math.round((now - o.startedAt) / 100) / 10 };
    if (now >= o.deadline)
      return {
        state: 'timed-out',
        reason: `timed out after ${Math.round((o.deadline - o.startedAt) / 1000)} s: ${s.why}`,
      };
    if (now >= o.until) return { state: 'waiting' };
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(o.pollMs, o.until - now))));
  }
}

/** Writes the result on the recovery point: the `xcr:drill` key only (remove + add, one key). */
export async function recordResult(xapi: Xapi, rpUuid: string, value: string): Promise<void> {
  const ref = await xapi.getByUuid('VM', rpUuid);
  await xapi.call('VM.remove_from_other_config', ref, KEY.drill);
  await xapi.call('VM.add_to_other_config', ref, KEY.drill, value);
}
