import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
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
      .sort(([a], [b]) => a.localeCompare(b)),
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

/**
 * The job's state machine definition exactly as the CDK app synthesizes it. Synthesis loads
 * aws-cdk-lib (seconds, hundreds of MiB), so the result is kept on disk under a key of the code
 * version and the job fields it depends on; aws-cdk-lib is only loaded when the key is new. Every
 * definition it returns has passed the local runner's validation (before it was written to the cache).
 */
export async function loadDefinition(
  config: XcrConfig,
  job: JobConfig,
  opts: { distributedMap?: boolean; cacheDir?: string } = {},
): Promise<Record<string, unknown>> {
  const key = definitionKey(job, opts);
  const cached = memo.get(key);
  if (cached) return cached;
  const dir = opts.cacheDir ?? definitionCacheDir();
  const file = join(dir, `${key}.json`);
  let def: Record<string, unknown>;
  try {
    def = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    const { synthesizeDefinitions } = await import('./workflow-definitions.js');
    def = synthesizeDefinitions({ ...config, jobs: [job] }, opts).get(job.id)!;
    // Validated once here, so a run of a cached definition need not validate it again.
    const { validateDefinition } = await import('./local-runner.js');
    validateDefinition(def);
    try {
      mkdirSync(dir, { recursive: true });
      const partial = `${file}.${process.pid}`;
      writeFileSync(partial, JSON.stringify(def));
      renameSync(partial, file);
    } catch {
      // a cache that cannot be written only costs the next run a synthesis
    }
  }
  memo.set(key, def);
  return def;
}
