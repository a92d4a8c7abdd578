import { join } from 'node:path';
import { ConfigError } from '../functions/config/load.js';
import type { XcrConfig } from '../functions/config/schema.js';
import { FileLeaseStore } from '../functions/lease/file.js';
import type { RunSummary } from '../functions/replication/contract.js';
import type {
  HandlerDeps,
  LeaseStore,
  Progress,
  RunStore,
  StepLogger,
} from '../functions/replication/ports.js';
import { FileRunStore } from '../functions/runstore/file.js';

/**
 * Where local runs keep their lease files (one per job, shared by every process on the machine)
 * and their run store (`run-store/`: each run's VM list and per-VM results while it runs).
 */
export function defaultStateDir(): string {
  return process.env.XCR_STATE_DIR ?? join(process.cwd(), '.xcr-state');
}

/** Reads pool passwords from the environment variables the config names (never from the config). */
export function envPasswordResolver(config: XcrConfig, env: NodeJS.ProcessEnv = process.env) {
  return async (poolName: string): Promise<string> => {
    const ref = config.pools[poolName]?.password;
    if (!ref) throw new Error(`pool "${poolName}" is not in the configuration`);
    if ('secret' in ref) {
      throw new ConfigError(
        [
          `pools.${poolName}.password: refers to the Secrets Manager secret "${ref.secret}", which local runs do not read; use { "env": "VAR" } for a local run`,
        ],
        'credentials',
      );
    }
    const value = env[ref.env];
    if (!value) {
      throw new ConfigError(
        [
          `pools.${poolName}.password: the environment variable ${ref.env} is not set; export it with the pool's password`,
        ],
        'credentials',
      );
    }
    return value;
  };
}

/** A logger writing one JSON line per entry to stderr (or nowhere). */
export function jsonLogger(write: ((line: string) => void) | undefined): StepLogger {
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    write?.(JSON.stringify({ level, time: new Date().toISOString(), message, ...fields }));
  return { info: log('INFO'), warn: log('WARN'), error: log('ERROR') };
}

export interface LocalDepsOptions {
  config: XcrConfig;
  stateDir?: string;
  leases?: LeaseStore;
  runs?: RunStore;
  logger?: StepLogger;
  progress?: Progress;
  env?: NodeJS.ProcessEnv;
  /** Each run event (finish-run's, or the execution-ended path's). */
  onRunResult?: (result: RunSummary) => void;
  /** Failover and failback events (detail-type, detail). */
  onEvent?: (detailType: string, detail: Record<string, unknown>) => void;
}

/** The dependencies of the step handlers for a run on this machine. */
export function localDeps(o: LocalDepsOptions): HandlerDeps {
  return {
    config: o.config,
    resolvePassword: envPasswordResolver(o.config, o.env),
    leases: o.leases ?? new FileLeaseStore(o.stateDir ?? defaultStateDir()),
    runs: o.runs ?? new FileRunStore(join(o.stateDir ?? defaultStateDir(), 'run-store')),
    events: {
      publish: async (result) => o.onRunResult?.(result),
      publishEvent: async (type, detail) => o.onEvent?.(type, detail),
    },
    logger: o.logger ?? jsonLogger(undefined),
    now: () => new Date(),
    progress: o.progress,
  };
}
