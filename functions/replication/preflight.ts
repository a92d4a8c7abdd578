import type { JobConfig, XcrConfig } from '../config/schema.js';
import { errorCodes } from '../retry/index.js';
import type { Xapi } from '../xapi/index.js';
import type { PoolSessions } from './context.js';
import { findSr, findVmByUuid } from './inventory.js';

export interface PreflightProblem {
  /** Where to fix it: a config field path. */
  field: string;
  message: string;
  kind: 'unreachable' | 'input';
}

function connectionProblem(
  config: XcrConfig,
  pool: string,
  err: Error & { code?: unknown },
): PreflightProblem {
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
 * and that the destination SR and the selected VMs exist. Read-only on both sides.
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
  if (source && 'uuids' in job.vms) {
    for (const uuid of job.vms.uuids)
      await check(`jobs[${job.id}].vms.uuids`, () => findVmByUuid(source, uuid));
  }
  return problems;
}
