import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { sourceDigest } from '../bin/source-digest.js';
import type { JobConfig, XcrConfig } from '../functions/config/schema.js';
import type { WorkflowDefinitions } from './local-runner.js';

const root = join(import.meta.dirname, '..');

/**
 * Job fields the handlers read from the configuration at run time and the CDK app does not put into
 * the state machine definition (a test synthesizes with each of them changed and compares), so a
 * change to them needs no new synthesis. Every other field, and any field added later, is part of
 * the cache key.
 */
export const RUNTIME_ONLY_JOB_FIELDS = [
  'name',
  'source',
  'destination',
  'vms',
  'schedule',
  'retention',
  'fullInterval',
  'bandwidthLimitMBps',
  'transferTimeoutSec',
  'transferMode',
  'enableCbt',
  'cbtChunkMiB',
  'cbtDestroySnapshotData',
] as const satisfies readonly (keyof JobConfig)[];

let codeVersion: string | undefined;

/** What the synthesized definition depends on (the CDK app, contract, schema, locked versions), hashed. */
function codeDigest(): string {
  // Everything the CDK app can import (infra/ and functions/ whole: the ASL retry names come from
  // functions/retry, the state names from the contract, …), so no list has to be kept in step.
  codeVersion ??= sourceDigest(
    root,
    ['infra', 'functions'],
    ['cli/workflow-definitions.ts', 'package-lock.json'],
  );
  return codeVersion;
}

/** The cache key of a job's definition: code version + the job fields the definition depends on. */
export function definitionKey(job: JobConfig): string {
  const shaping = Object.fromEntries(
    Object.entries(job)
      .filter(([k]) => !(RUNTIME_ONLY_JOB_FIELDS as readonly string[]).includes(k))
      // Of a drill block only whether there is one and its Map's concurrency shape the definitions
      // (every, check, network, the timeout and alarmDays are read at run time or build no state).
      .map(([k, v]) =>
        k === 'drill' ? [k, { concurrency: (v as JobConfig['drill'])?.concurrency }] : [k, v],
      )
      .sort(([a], [b]) => String(a).localeCompare(String(b))),
  );
  const digest = createHash('sha256')
    // `validated`: files written since the cache validates what it writes; `children`: the run's
    // batch and transfer machines are kept with it
    .update(JSON.stringify({ shaping, validated: true, children: true }))
    .digest('hex')
    .slice(0, 16);
  return `${codeDigest()}-${job.id}-${digest}`;
}

/** Where definitions are kept: $XCR_CACHE_DIR, else the user's cache directory. */
export function definitionCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XCR_CACHE_DIR) return env.XCR_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'xcr', 'definitions');
}

const memo = new Map<string, WorkflowDefinitions>();

/** The state machines of a job: its run, its drill, its failover and its failback. */
export type Machine = 'run' | 'drill' | 'failover' | 'failback';

function isDefinitions(value: unknown): value is WorkflowDefinitions {
  const v = value as Partial<WorkflowDefinitions> | null;
  return (
    typeof v?.main === 'object' && v.main !== null && typeof v.children === 'object' && v.children !== null
  );
}

function store(file: string, defs: WorkflowDefinitions): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, JSON.stringify(defs));
    renameSync(partial, file);
  } catch {
    // a cache that cannot be written only costs the next run a synthesis
  }
}

function readCached(file: string): WorkflowDefinitions | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    // a file of an older layout (one definition) is synthesized again
    return isDefinitions(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The job's state machine definitions — the run with its child machines (batch, transfer), or with
 * `machine` its drill's, its failover's (the batch and transfer machines as children, for the
 * final delta) or its failback's — exactly as the CDK app synthesizes them. Synthesis loads
 * aws-cdk-lib (seconds, hundreds of MiB), so the result is kept on disk under a key of the code
 * version and the job fields it depends on; aws-cdk-lib is only loaded when the key is new, and one
 * synthesis stores all of the job's definitions. Every definition it returns has passed the local
 * runner's validation (before it was written to the cache).
 */
export async function loadDefinition(
  config: XcrConfig,
  job: JobConfig,
  opts: { cacheDir?: string; machine?: Machine } = {},
): Promise<WorkflowDefinitions> {
  const key = definitionKey(job);
  const dir = opts.cacheDir ?? definitionCacheDir();
  const fileOf = (machine: Machine) =>
    join(dir, machine === 'run' ? `${key}.json` : `${key}.${machine}.json`);
  const machine = opts.machine ?? 'run';
  if (machine === 'drill' && !job.drill)
    throw new Error(`job ${job.id} has no drill block: add "drill": { "every": { "afterRuns": 1 } } to it`);
  const cached = memo.get(fileOf(machine)) ?? readCached(fileOf(machine));
  if (cached) {
    memo.set(fileOf(machine), cached);
    return cached;
  }
  const { drillDefinitionKey, failoverDefinitionKey, synthesizeDefinitions } = await import(
    './workflow-definitions.js'
  );
  const defs = synthesizeDefinitions({ ...config, jobs: [job] });
  // Validated once here, so a run of a cached definition need not validate it again.
  const { validateDefinition } = await import('./local-runner.js');
  const keep = (which: Machine, d: WorkflowDefinitions | undefined) => {
    if (!d) return;
    validateDefinition(d.main);
    for (const child of Object.values(d.children)) validateDefinition(child);
    store(fileOf(which), d);
    memo.set(fileOf(which), d);
  };
  keep('run', defs.get(job.id));
  keep('drill', defs.get(drillDefinitionKey(job.id)));
  keep('failover', defs.get(failoverDefinitionKey('failover', job.id)));
  keep('failback', defs.get(failoverDefinitionKey('failback', job.id)));
  const def = memo.get(fileOf(machine));
  if (!def) throw new Error(`job ${job.id}: the CDK app synthesized no ${machine} state machine`);
  return def;
}
