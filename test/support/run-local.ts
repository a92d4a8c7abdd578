import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExecution, synthesizeDefinitions } from '../../cli/local-runner.js';
import type { JobConfig, XcrConfig } from '../../functions/config/schema.js';
import type { StepHandler } from '../../functions/handlers/steps.js';
import type { RunResult } from '../../functions/replication/contract.js';

const root = join(import.meta.dirname, '..', '..');
const memo = new Map<string, Record<string, unknown>>();

/** Everything the synthesized definition depends on: the infra sources, the contract, the schema. */
function sourceDigest(): string {
  const hash = createHash('sha256');
  const files = [
    ...readdirSync(join(root, 'infra')).map((f) => join('infra', f)),
    'functions/replication/contract.ts',
    'functions/retry/policy.ts',
    'functions/config/schema.ts',
    'cli/workflow-definitions.ts',
  ].sort();
  for (const f of files) if (f.endsWith('.ts')) hash.update(f).update(readFileSync(join(root, f)));
  return hash.digest('hex').slice(0, 16);
}

/**
 * The job's state machine exactly as CDK synthesizes it. Synthesis loads aws-cdk-lib and takes
 * seconds, so the result is kept on disk, keyed by the sources it depends on.
 */
export function definitionFor(config: XcrConfig, job: JobConfig): Record<string, unknown> {
  const key = `${sourceDigest()}-${job.id}-${job.concurrency}`;
  const cached = memo.get(key);
  if (cached) return cached;
  const dir = join(tmpdir(), 'xcr-definitions');
  const file = join(dir, `${key}.json`);
  let def: Record<string, unknown>;
  try {
    def = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    def = synthesizeDefinitions({ ...config, jobs: [job] }).get(job.id)!;
    mkdirSync(dir, { recursive: true });
    const partial = `${file}.${process.pid}`;
    writeFileSync(partial, JSON.stringify(def));
    renameSync(partial, file);
  }
  memo.set(key, def);
  return def;
}

/** Runs one execution of the synthesized workflow with in-process handlers; a failed execution throws. */
export async function runLocalExecution(
  config: XcrConfig,
  job: JobConfig,
  handlers: Record<string, StepHandler>,
  runId: string,
  onStateEvent?: (event: unknown) => void,
  transform: (definition: Record<string, unknown>) => Record<string, unknown> = (d) => d,
): Promise<RunResult> {
  const result = await runExecution({
    definition: transform(structuredClone(definitionFor(config, job))),
    input: { jobId: job.id, scheduledTime: new Date().toISOString() },
    executionName: runId,
    handlers: handlers as never,
    retryIntervalMs: 0,
    onStateEvent,
  });
  if (result.status !== 'SUCCEEDED') {
    throw Object.assign(
      new Error(`execution ${runId} failed: ${result.error?.Error}: ${result.error?.Cause}`),
      {
        name: result.error?.Error ?? 'ExecutionFailed',
      },
    );
  }
  return result.output as RunResult;
}
