import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { sourceDigest } from '../bin/source-digest.js';
import type { JobConfig, XcrConfig } from '../functions/config/schema.js';

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
export function definitionKey(job: JobConfig, opts: { distributedMap?: boolean } = {}): string {
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
    // `validated`: files written since the cache validates what it writes
    .update(JSON.stringify({ shaping, distributedMap: opts.distributedMap ?? false, validated: true }))
    .digest('hex')
    .slice(0, 16);
  return `${codeDigest()}-${job.id}-${digest}`;
}

/** Where definitions are kept: $XCR_CACHE_DIR, else the user's cache directory. */
export function definitionCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XCR_CACHE_DIR) return env.XCR_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'xcr', 'definitions');
}

const memo = new Map<string, Record<string, unknown>>();

function store(file: string, def: Record<string, unknown>): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, JSON.stringify(def));
    renameSync(partial, file);
  } catch {
    // a cache that cannot be written only costs the next run a synthesis
  }
}

/**
 * The job's state machine definition (or, with `machine: 'drill'`, its drill's) exactly as the
 * CDK app synthesizes it. Synthesis loads aws-cdk-lib (seconds, hundreds of MiB), so the result is
 * kept on disk under a key of the code version and the job fields it depends on; aws-cdk-lib is
 * only loaded when the key is new, and one synthesis stores both definitions of the job. Every
 * definition it returns has passed the local runner's validation (before it was written to the cache).
 */
export async function loadDefinition(
  config: XcrConfig,
  job: JobConfig,
  opts: { distributedMap?: boolean; cacheDir?: string; machine?: 'run' | 'drill' } = {},
): Promise<Record<string, unknown>> {
  const key = definitionKey(job, opts);
  const dir = opts.cacheDir ?? definitionCacheDir();
  const fileOf = (machine: 'run' | 'drill') =>
    join(dir, machine === 'drill' ? `${key}.drill.json` : `${key}.json`);
  const machine = opts.machine ?? 'run';
  if (machine === 'drill' && !job.drill)
    throw new Error(`job ${job.id} has no drill block: add "drill": { "every": { "afterRuns": 1 } } to it`);
  const cached = memo.get(fileOf(machine));
  if (cached) return cached;
  let def: Record<string, unknown>;
  try {
    def = JSON.parse(readFileSync(fileOf(machine), 'utf8')) as Record<string, unknown>;
  } catch {
    const { drillDefinitionKey, synthesizeDefinitions } = await import('./workflow-definitions.js');
    const defs = synthesizeDefinitions({ ...config, jobs: [job] }, opts);
    const run = defs.get(job.id)!;
    const drill = defs.get(drillDefinitionKey(job.id));
    // Validated once here, so a run of a cached definition need not validate it again.
    const { validateDefinition } = await import('./local-runner.js');
    validateDefinition(run);
    store(fileOf('run'), run);
    memo.set(fileOf('run'), run);
    if (drill) {
      validateDefinition(drill);
      store(fileOf('drill'), drill);
      memo.set(fileOf('drill'), drill);
    }
    def = machine === 'drill' ? drill! : run;
  }
  memo.set(fileOf(machine), def);
  return def;
}
