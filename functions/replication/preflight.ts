import type { JobConfig, XcrConfig } from '../config/schema.js';
import { errorCodes } from '../retry/index.js';
import type { VmRecord, Xapi } from '../xapi/index.js';
import { planLanding } from './boot-checks.js';
import type { PoolSessions } from './context.js';
import { XcrPermanentError } from './errors.js';
import { checkFormats } from './image-format.js';
import { findSr, findVmByUuid, vmDisks, vmsWithTag } from './inventory.js';

export interface PreflightProblem {
  /** Where to fix it: a config field path. */
  field: string;
  message: string;
  kind: 'unreachable' | 'input';
}

/** TLS verification failures of a certificate chain (Node's OpenSSL codes). */
const CHAIN_ERRORS =
  /^(UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_|ERR_TLS_CERT_ALTNAME_INVALID|ERR_OSSL_)/;

/** What went wrong opening a pool, under the config field to fix. */
export function connectionProblem(
  config: XcrConfig,
  pool: string,
  err: Error & { code?: unknown; issues?: string[]; path?: unknown },
): PreflightProblem {
  if (err.name === 'ConfigError' && err.issues?.length) {
    const [field, ...rest] = err.issues[0]!.split(': ');
    return { field: field!, kind: 'input', message: rest.join(': ') };
  }
  const caFile = config.pools[pool]?.tlsCaFile;
  if (caFile && typeof err.code === 'string' && err.path === caFile) {
    return {
      field: `pools.${pool}.tlsCaFile`,
      kind: 'input',
      message: `cannot read the CA file ${caFile} (${err.code}); fix the path in pools.${pool}.tlsCaFile`,
    };
  }
  if (caFile && typeof err.code === 'string' && CHAIN_ERRORS.test(err.code)) {
    return {
      field: `pools.${pool}.tlsCaFile`,
      kind: 'unreachable',
      message: `pool "${pool}" presented a certificate that the CA in ${caFile} does not verify (${err.code}); put the CA that signed the host's certificate in pools.${pool}.tlsCaFile, or pin it with tlsFingerprint`,
    };
  }
  const ref = config.pools[pool]?.password;
  const where = ref && 'env' in ref ? `the environment variable ${ref.env}` : 'the secret it refers to';
  if (err.name === 'XapiError' && err.code === 'SESSION_AUTHENTICATION_FAILED') {
    return {
      field: `pools.${pool}.password`,
      kind: 'unreachable',
      message: `pool "${pool}" refused the username "${config.pools[pool]?.username}" or its password; check ${where} and pools.${pool}.username`,
    };
  }
  if (errorCodes(err).includes('CERT_FINGERPRINT_MISMATCH')) {
    return {
      field: `pools.${pool}.tlsFingerprint`,
      kind: 'unreachable',
      message: `pool "${pool}" presented a certificate that does not match tlsFingerprint; read the host's fingerprint (openssl s_client | openssl x509 -noout -fingerprint -sha256) and update pools.${pool}.tlsFingerprint`,
    };
  }
  return {
    field: `pools.${pool}.url`,
    kind: 'unreachable',
    message: `cannot reach pool "${pool}" at ${config.pools[pool]?.url} (${err.message}); check the url and the network path (VPN)`,
  };
}

/**
 * Checks, before a run changes anything, that both pools answer with the configured credentials
 * that the destination SR and the selected VMs exist, that every network their VIFs use maps to a
 * destination network, that a VM with a vTPM goes to a pool that can hold one and that qcow2 disks
 * can travel (cbt mode, a destination SR with qcow2). Read-only.
 */
export async function preflight(
  config: XcrConfig,
  job: JobConfig,
  pools: PoolSessions,
): Promise<PreflightProblem[]> {
  const problems: PreflightProblem[] = [];
  const open = async (pool: string): Promise<Xapi | undefined> => {
    try {
      return await pools.get(pool);
    } catch (err) {
      problems.push(connectionProblem(config, pool, err as Error));
      return undefined;
    }
  };
  const [source, destination] = [await open(job.source.pool), await open(job.destination.pool)];
  const check = async (field: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      problems.push({ field, kind: 'input', message: (err as Error).message.replace(/^[A-Z_]+: /, '') });
    }
  };
  if (destination)
    await check(`jobs[${job.id}].destination.sr`, () => findSr(destination, job.destination.sr));
  const vms: VmRecord[] = [];
  if (source && 'uuids' in job.vms) {
    for (const uuid of job.vms.uuids)
      await check(`jobs[${job.id}].vms.uuids`, async () => vms.push((await findVmByUuid(source, uuid)).rec));
  } else if (source && 'tag' in job.vms) {
    vms.push(...(await vmsWithTag(source, job.vms.tag)));
  }
  if (source && destination) {
    const plan = await planLanding(source, destination, job.destination, `jobs[${job.id}].destination`, vms);
    for (const p of plan.problems) problems.push({ ...p, kind: 'input' });
    problems.push(...(await formatProblems(source, destination, job, vms)));
  }
  return problems;
}

/** qcow2 disks (and disks over 2040 GiB) the job could not carry, under the field to change. */
async function formatProblems(
  source: Xapi,
  destination: Xapi,
  job: JobConfig,
  vms: VmRecord[],
): Promise<PreflightProblem[]> {
  const srRef = await findSr(destination, job.destination.sr).catch(() => undefined);
  if (!srRef) return [];
  const out: PreflightProblem[] = [];
  for (const vm of vms) {
    try {
      await checkFormats(source, destination, job, await vmDisks(source, vm), srRef);
    } catch (err) {
      if (!(err instanceof XcrPermanentError)) throw err;
      const field =
        err.code === 'SR_NO_QCOW2'
          ? 'destination.sr'
          : job.transferMode === 'vhd'
            ? 'transferMode'
            : 'enableCbt';
      out.push({
        field: `jobs[${job.id}].${field}`,
        kind: 'input',
        message: `VM "${vm.name_label}" (${vm.uuid}): ${err.message.replace(/^[A-Z0-9_]+: /, '')}`,
      });
    }
  }
  return out;
}
