/**
 * Whether a source VM can land on the destination as a bootable recovery point: every network its
 * VIFs use maps to a destination network, and a VM with a vTPM goes only to a pool that may hold
 * one. Read-only on both sides; run by the preflight and again per VM before its snapshot.
 */
import type { ObjectSelector } from '../config/schema.js';
import type { VifRecord, VmRecord, Xapi } from '../xapi/index.js';
import type { RunContext } from './context.js';
import { XcrPermanentError } from './errors.js';
import { jobNetworkMap, type NetworkInfo, networkProblems, resolveNetworks } from './network-map.js';

export interface LandingPlan {
  /** source network ref → destination network ref, for every network the VM's VIFs use */
  networks: Map<string, string>;
  problems: { field: string; message: string }[];
  /** the VMs' VIF records, by ref, as read for the check */
  vifs: Map<string, VifRecord>;
}

export interface DestinationConfig {
  network?: ObjectSelector | undefined;
  networkMap?: Record<string, string> | undefined;
}

export async function networks(xapi: Xapi, refs?: Set<string>): Promise<NetworkInfo[]> {
  return [...(await xapi.getAllRecords('network'))]
    .filter(([ref]) => !refs || refs.has(ref))
    .map(([ref, n]) => ({
      ref,
      uuid: n.uuid,
      name_label: n.name_label,
      PIFs: n.PIFs ?? [],
      other_config: n.other_config,
    }));
}

/** xapi refuses VTPM.create unless pool.restrictions.restrict_vtpm is exactly "false". */
export async function poolCanHoldVtpm(xapi: Xapi): Promise<boolean> {
  const pools = [...(await xapi.getAllRecords('pool')).values()];
  return pools.every((p) => p.restrictions?.restrict_vtpm === 'false');
}

export async function planLanding(
  source: Xapi,
  destination: Xapi,
  dest: DestinationConfig,
  field: string,
  vms: VmRecord[],
): Promise<LandingPlan> {
  const vifs = new Map<string, VifRecord>();
  for (const vm of vms) for (const ref of vm.VIFs) vifs.set(ref, await source.getRecord('VIF', ref));
  const used = new Set([...vifs.values()].map((v) => v.network));
  const res = resolveNetworks(await networks(source, used), await networks(destination), jobNetworkMap(dest));
  const shorthand = !dest.networkMap && dest.network !== undefined;
  const mapField = `${field}.${shorthand ? 'network' : 'networkMap'}`;
  const problems = networkProblems(res, mapField, shorthand).map((message) => ({ field: mapField, message }));
  const withVtpm = vms.filter((vm) => vm.VTPMs.length > 0);
  if (withVtpm.length > 0 && !(await poolCanHoldVtpm(destination))) {
    problems.push({
      field: `${field}.pool`,
      message: `the destination pool cannot hold a vTPM (pool.restrictions.restrict_vtpm is not "false": unlicensed or too old), but ${withVtpm.map((v) => `"${v.name_label}"`).join(', ')} ha${withVtpm.length > 1 ? 've' : 's'} one; replicate to a pool that supports vTPM or remove the VM from the job`,
    });
  }
  return { networks: res.mapped, problems, vifs };
}

/**
 * The per-VM check of a run, before its snapshot and again at commit: a VM that cannot land fails
 * alone (NETWORK_UNMAPPED / VTPM_UNSUPPORTED) and nothing is created for it.
 */
export async function landingNetworks(
  source: Xapi,
  destination: Xapi,
  ctx: Pick<RunContext, 'job'>,
  vm: VmRecord,
): Promise<Pick<LandingPlan, 'networks' | 'vifs'>> {
  const plan = await planLanding(source, destination, ctx.job.destination, 'destination', [vm]);
  const first = plan.problems[0];
  if (first) {
    const code = first.field.endsWith('.pool') ? 'VTPM_UNSUPPORTED' : 'NETWORK_UNMAPPED';
    throw new XcrPermanentError(code, plan.problems.map((p) => `${p.field}: ${p.message}`).join('; '));
  }
  return plan;
}
