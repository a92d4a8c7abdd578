import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
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

function listTs(dir: string): string[] {
  return (readdirSync(join(root, dir), { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

/** What the synthesized definition depends on (the CDK app, contract, schema, locked versions), hashed. */
function sourceDigest(): string {
  if (codeVersion) return codeVersion;
  const hash = createHash('sha256');
  // Everything the CDK app can import (infra/ and functions/ whole: the ASL retry names come from
  // functions/retry, the state names from the contract, …), so no list has to be kept in step.
  const files = [
    ...listTs('infra'),
    ...listTs('functions'),
    'cli/workflow-definitions.ts',
    'package-lock.json',
  ].sort();
  for (const f of files) {
    if (!f.endsWith('.ts') && !f.endsWith('.json')) continue;
    hash.update(f);
    // an installed copy may have no lock file; the sources are always there
    if (existsSync(join(root, f))) hash.update(readFileSync(join(root, f)));
  }
  codeVersion = hash.digest('hex').slice(0, 16);
  return codeVersion;
}

/** The cache key of a job's definition: code version + the job fields the definition depends on. */
export function definitionKey(job: JobConfig): string {
  const shaping = Object.fromEntries(
    Object.entries(job)
      .filter(([k]) => !(RUNTIME_ONLY_JOB_FIELDS as readonly string[]).includes(k))
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  const digest = createHash('sha256').update(JSON.stringify({ shaping })).digest('hex').slice(0, 16);
  return `${sourceDigest()}-${job.id}-${digest}`;
}

/** Where definitions are kept: $XCR_CACHE_DIR, else the user's cache directory. */
export function definitionCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.XCR_CACHE_DIR) return env.XCR_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'xcr', 'definitions');
}

const memo = new Map<string, WorkflowDefinitions>();

function isDefinitions(value: unknown): value is WorkflowDefinitions {
  const v = value as Partial<WorkflowDefinitions> | null;
  return (
    typeof v?.main === 'object' && v.main !== null && typeof v.children === 'object' && v.children !== null
  );
}

/**
 * The job's state machine definitions (the run and its child machines) exactly as the CDK app
 * synthesizes them, kept together in one cache file. Synthesis loads
 * aws-cdk-lib (seconds, hundreds of MiB), so the result is kept on disk under a key of the code
 * version and the job fields it depends on; aws-cdk-lib is only loaded when the key is new.
 */
export async function loadDefinition(
  config: XcrConfig,
  job: JobConfig,
  opts: { cacheDir?: string } = {},
): Promise<WorkflowDefinitions> {
  const key = definitionKey(job);
  const cached = memo.get(key);
  if (cached) return cached;
  const dir = opts.cacheDir ?? definitionCacheDir();
  const file = join(dir, `${key}.json`);
  let def: WorkflowDefinitions | undefined;
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    // a file of an older layout (one definition) is synthesized again
    if (isDefinitions(parsed)) def = parsed;
  } catch {
    def = undefined;
  }
  if (!def) {
    const { synthesizeDefinitions } = await import('./workflow-definitions.js');
    def = synthesizeDefinitions({ ...config, jobs: [job] }).get(job.id)!;
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
