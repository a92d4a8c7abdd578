import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { definitionKey, RUNTIME_ONLY_JOB_FIELDS } from '../../../cli/definition-cache.js';
import type { WorkflowDefinitions } from '../../../cli/local-runner.js';
import {
  drillDefinitionKey,
  failoverDefinitionKey,
  synthesizeDefinitions,
} from '../../../cli/workflow-definitions.js';
import { parseConfig } from '../../../functions/config/load.js';
import type { JobConfig } from '../../../functions/config/schema.js';
import { minimalRawConfig } from '../../support/minimal-config.js';

/**
 * `xcr run` does not synthesize the CDK app when the job's definition is cached: the key holds the
 * code version and every job field the definition depends on, and nothing else.
 */
const root = join(import.meta.dirname, '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'xcr-defcache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const raw = minimalRawConfig('cached');

const FP = Array.from({ length: 32 }, () => 'AB').join(':');

/** The same job with every runtime-only field (and the pools, and a deployment) changed. */
const changedEverywhere = {
  version: 1,
  pools: {
    c: { url: 'https://10.0.0.1', password: { secret: 'xcr/c' }, tlsFingerprint: FP },
    d: { url: 'https://10.0.0.2', password: { secret: 'xcr/d' }, tlsFingerprint: FP },
  },
  deployment: {
    vpcId: 'vpc-0abc',
    subnetIds: ['subnet-0abc'],
    xapiCidrs: ['10.0.0.0/24'],
    lagAlarmMinutes: 99,
  },
  jobs: [
    {
      id: 'cached',
      name: 'another name',
      source: { pool: 'c' },
      destination: {
        pool: 'd',
        sr: { uuid: '6f2b9a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b' },
        network: { name: 'n' },
      },
      vms: { uuids: ['6f2b9a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5c'] },
      schedule: { cron: '0 3 * * ? *', timezone: 'Europe/Paris' },
      retention: 7,
      fullInterval: 5,
      bandwidthLimitMBps: 12,
      transferTimeoutSec: 300,
      transferMode: 'cbt',
      enableCbt: true,
      cbtChunkMiB: 64,
      cbtDestroySnapshotData: true,
    },
  ],
};

const base = parseConfig(raw);
let baseDefinition: WorkflowDefinitions | undefined;
const synthesizedBase = () => (baseDefinition ??= synthesizeDefinitions(base).get('cached')!);

describe('the definition key', { timeout: 180_000 }, () => {
  const changed = parseConfig(changedEverywhere);

  it('changes every runtime-only field in the comparison', () => {
    const a = base.jobs[0]! as Record<string, unknown>;
    const b = changed.jobs[0]! as Record<string, unknown>;
    for (const field of RUNTIME_ONLY_JOB_FIELDS) expect(b[field], field).not.toEqual(a[field]);
  });

  it('leaves out only fields the synthesized definition does not depend on', () => {
    expect(synthesizeDefinitions(changed).get('cached')).toEqual(synthesizedBase());
    expect(definitionKey(changed.jobs[0]!)).toBe(definitionKey(base.jobs[0]!));
  });

  it('includes what shapes the definitions (concurrency, id)', () => {
    const job = base.jobs[0]!;
    const more: JobConfig = { ...job, concurrency: job.concurrency + 1 };
    expect(synthesizeDefinitions({ ...base, jobs: [more] }).get('cached')).not.toEqual(synthesizedBase());
    expect(definitionKey(more)).not.toBe(definitionKey(job));
    expect(definitionKey({ ...job, id: 'other' })).not.toBe(definitionKey(job));
  });

  it('of a drill block, only its presence and concurrency (the drill Map) are in the key', () => {
    const job = base.jobs[0]!;
    const drill = parseConfig({
      ...raw,
      jobs: [{ ...raw.jobs[0], drill: { every: { afterRuns: 1 } } }],
    }).jobs[0]!.drill!;
    const other = {
      ...drill,
      every: { afterRuns: 2 },
      timeoutMinutes: 3,
      check: 'tools' as const,
      alarmDays: 2,
    };
    const a = synthesizeDefinitions({ ...base, jobs: [{ ...job, drill }] });
    const b = synthesizeDefinitions({ ...base, jobs: [{ ...job, retention: 5, drill: other }] });
    expect(b.get(drillDefinitionKey('cached'))).toEqual(a.get(drillDefinitionKey('cached')));
    expect(definitionKey({ ...job, drill: other })).toBe(definitionKey({ ...job, drill }));
    expect(definitionKey({ ...job, drill })).not.toBe(definitionKey(job));
    expect(definitionKey({ ...job, drill: { ...drill, concurrency: 2 } })).not.toBe(
      definitionKey({ ...job, drill }),
    );
  });
});

describe('loadDefinition in a new process', { timeout: 180_000 }, () => {
  const child = async (config: unknown) => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'definition-child.ts'), dir, JSON.stringify(config)],
      { cwd: root, timeout: 120_000 },
    );
    return JSON.parse(stdout) as { cdkLoaded: boolean; definition: WorkflowDefinitions };
  };

  it('synthesizes once, then reads the cache without loading aws-cdk-lib', async () => {
    const cold = await child(raw);
    expect(cold.cdkLoaded).toBe(true);
    // the run (with its children), the failover and the failback
    expect(readdirSync(dir)).toHaveLength(3);
    const warm = await child(changedEverywhere);
    expect(warm.cdkLoaded).toBe(false);
    expect(warm.definition).toEqual(cold.definition);
    expect(warm.definition).toEqual(synthesizedBase());
    // One cache file holds the run and both child machines.
    expect(Object.keys(warm.definition.children)).toHaveLength(2);
  });
});

describe('validation of what the cache holds', () => {
  it('refuses a definition the local runner would refuse, and leaves the definition as it was', async () => {
    const { validateDefinition } = await import('../../../cli/local-runner.js');
    expect(() => validateDefinition({ StartAt: 'missing', States: {} })).toThrow(/invalid/);
    const def = structuredClone(synthesizedBase().main);
    validateDefinition(def);
    expect(def).toEqual(synthesizedBase().main); // the validator's QueryLanguage defaults are not written back
  });
});

describe('the drill definition in the cache', { timeout: 180_000 }, () => {
  it('one synthesis stores the job’s and its drill’s definitions; the drill one then loads without aws-cdk-lib', async () => {
    const drillDir = mkdtempSync(join(tmpdir(), 'xcr-defcache-drill-'));
    afterAll(() => rmSync(drillDir, { recursive: true, force: true }));
    const withDrill = {
      ...raw,
      jobs: [{ ...raw.jobs[0], drill: { every: { afterRuns: 1 }, concurrency: 2 } }],
    };
    const child = async (machine: string) => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          '--import',
          'tsx',
          join(import.meta.dirname, 'definition-child.ts'),
          drillDir,
          JSON.stringify(withDrill),
          machine,
        ],
        { cwd: root, timeout: 120_000 },
      );
      return JSON.parse(stdout) as { cdkLoaded: boolean; definition: WorkflowDefinitions };
    };
    const run = await child('run');
    expect(run.cdkLoaded).toBe(true);
    const files = readdirSync(drillDir);
    expect(files).toHaveLength(4);
    expect(files.filter((f) => f.endsWith('.drill.json'))).toHaveLength(1);
    const drill = await child('drill');
    expect(drill.cdkLoaded).toBe(false);
    expect(drill.definition.main.StartAt).toBe('select-points');
    expect(drill.definition).toEqual(
      synthesizeDefinitions(parseConfig(withDrill)).get(drillDefinitionKey('cached')),
    );
    // the failover machine, kept with the batch and transfer machines its final delta runs
    const failover = await child('failover');
    expect(failover.cdkLoaded).toBe(false);
    expect(failover.definition.main.StartAt).toBe('failover-begin');
    expect(Object.keys(failover.definition.children)).toHaveLength(2);
    expect(failover.definition).toEqual(
      synthesizeDefinitions(parseConfig(withDrill)).get(failoverDefinitionKey('failover', 'cached')),
    );
    const failback = await child('failback');
    expect(failback.cdkLoaded).toBe(false);
    expect(failback.definition.main.StartAt).toBe('failback-begin');
  });
});
