import { readFileSync } from 'node:fs';
import type { JobConfig, PoolConfig, XcrConfig } from '../config/schema.js';
import { Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';
import type { LeaseStore, Progress, RunEventSink, RunStore, StepLogger } from './ports.js';

/** What a step of a run works with: the job, lazily opened pool sessions, the lease store. */
export interface RunContext {
  job: JobConfig;
  source(): Promise<Xapi>;
  destination(): Promise<Xapi>;
  leases: LeaseStore;
  runs: RunStore;
  events: RunEventSink;
  logger: StepLogger;
  now(): Date;
  progress?: Progress;
}

export const LEASE_TTL_MS = 60 * 60 * 1000;

export function leaseKey(jobId: string): string {
  return `job#${jobId}`;
}

/** Renews the run's lease; a run that lost it must not write anything more. */
export async function holdLease(ctx: RunContext, runId: string): Promise<void> {
  const lease = await ctx.leases.acquire(leaseKey(ctx.job.id), runId, LEASE_TTL_MS);
  if (!lease.acquired) {
    throw new XcrPermanentError(
      'LEASE_LOST',
      `run ${runId} no longer holds job ${ctx.job.id} (held by ${lease.holder} until ${lease.expiresAt.toISOString()})`,
    );
  }
}

export function openPool(pool: PoolConfig, password: string): Promise<Xapi> {
  return Xapi.connect({
    url: pool.url,
    username: pool.username,
    password,
    tls: {
      fingerprint256: pool.tlsFingerprint,
      ca: pool.tlsCaFile ? readFileSync(pool.tlsCaFile, 'utf8') : undefined,
    },
    allowPlainHttp: pool.allowPlainHttp,
  });
}

/** Opens each pool at most once per step and logs out of all of them at the end. */
export class PoolSessions {
  private readonly open = new Map<string, Promise<Xapi>>();

  constructor(
    private readonly config: XcrConfig,
    private readonly resolvePassword: (pool: string) => Promise<string>,
  ) {}

  get(name: string): Promise<Xapi> {
    let session = this.open.get(name);
    if (!session) {
      const pool = this.config.pools[name];
      if (!pool) throw new XcrPermanentError('UNKNOWN_POOL', `pool "${name}" is not in the configuration`);
      session = this.resolvePassword(name).then((password) => openPool(pool, password));
      session.catch(() => this.open.delete(name));
      this.open.set(name, session);
    }
    return session;
  }

  async closeAll(): Promise<void> {
    const sessions = [...this.open.values()];
    this.open.clear();
    await Promise.allSettled(sessions.map(async (s) => (await s).logout()));
  }
}
