import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MiB, startSites } from '../../support/sites.js';

/**
 * bin/xcr.js runs the CLI's esbuild bundle, built at the first start and again after any source
 * changed (never a stale one), and runs the TypeScript through tsx where no bundle can be built.
 * Each case works on a copy of the sources (node_modules linked), so the checkout is left alone.
 */
const root = join(import.meta.dirname, '..', '..', '..');
let copy: string;

beforeAll(() => {
  copy = mkdtempSync(join(tmpdir(), 'xcr-bundle-'));
  for (const d of ['bin', 'cli', 'functions', 'infra', 'package.json', 'package-lock.json'])
    cpSync(join(root, d), join(copy, d), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
});
afterAll(() => rmSync(copy, { recursive: true, force: true }));

function xcr(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(copy, 'bin', 'xcr.js'), ...args],
      { cwd: copy, timeout: 120_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr }),
    );
  });
}

const entries = () => readdirSync(join(copy, '.cli-bundle')).filter((f) => /^main-[0-9a-f]{16}\.js$/.test(f));
const mainTs = () => join(copy, 'cli', 'main.ts');
const DESCRIPTION = 'continuous replication of XenServer / XCP-ng VMs';

it('builds the bundle at the first start and runs from it', { timeout: 180_000 }, async () => {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  expect(await xcr(['--version'])).toMatchObject({ code: 0, stdout: `${version}\n` });
  expect(entries()).toHaveLength(1);
  const [entry] = entries();
  expect(readFileSync(join(copy, '.cli-bundle', entry!), 'utf8')).toContain(DESCRIPTION);
  // the CDK app is a chunk of its own, imported only by a synthesis
  expect(readFileSync(join(copy, '.cli-bundle', entry!), 'utf8')).not.toMatch(/from ["']aws-cdk-lib/);
  await xcr(['--version']);
  expect(entries()).toEqual([entry]); // unchanged sources: the same bundle, not a rebuild
});

it('synthesizes, validates and runs a job from the bundle; what it defers is not imported at start', {
  timeout: 300_000,
}, async () => {
  const sites = await startSites({
    vms: [
      { name_label: 'vm', disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: MiB, seed: 5 }] }] },
    ],
  });
  try {
    writeFileSync(join(copy, 'xcr.json'), JSON.stringify(sites.config));
    const cache = join(copy, 'definitions'); // empty: this run synthesizes and validates
    const run = await xcr(['run', '-c', join(copy, 'xcr.json'), '--json'], {
      XCR_CACHE_DIR: cache,
      XCR_STATE_DIR: join(copy, 'state'),
      XCR_TEST_A: sites.source.password,
      XCR_TEST_B: sites.destination.password,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: 'succeeded', vms: [{ status: 'succeeded' }] });
    // one synthesis stores every machine of the job: its run and its failover and failback
    const stored = readdirSync(cache).map((f) => f.replace(/^[^.]+/, ''));
    expect(stored.sort()).toEqual(['.failback.json', '.failover.json', '.json']);
    sites.assertReplicasMatchSource('vm');
  } finally {
    await sites.close();
  }
  for (const f of readdirSync(join(copy, '.cli-bundle')).filter((n) => n.endsWith('.js'))) {
    const code = readFileSync(join(copy, '.cli-bundle', f), 'utf8');
    expect(code, f).not.toMatch(
      /from ["'](aws-local-stepfunctions|@aws-sdk\/client-lambda|@aws-sdk\/credential-providers|asl-validator)["']/,
    );
  }
});

it('rebuilds after a source changed, so the edit is what runs', { timeout: 180_000 }, async () => {
  const before = entries();
  writeFileSync(mainTs(), readFileSync(mainTs(), 'utf8').replace(DESCRIPTION, 'edited description'));
  const help = await xcr(['--help']);
  expect(help.stdout).toContain('edited description');
  expect(entries()).toHaveLength(before.length + 1);
});

it('runs the sources through tsx when no bundle can be built, or with XCR_NO_BUNDLE=1', {
  timeout: 180_000,
}, async () => {
  writeFileSync(mainTs(), readFileSync(mainTs(), 'utf8').replace('edited description', 'through tsx'));
  const opted = await xcr(['--help'], { XCR_NO_BUNDLE: '1' });
  expect(opted.stdout).toContain('through tsx');
  expect(
    entries().some((f) => readFileSync(join(copy, '.cli-bundle', f), 'utf8').includes('through tsx')),
  ).toBe(false);
  // a bundle directory that cannot be written (here: a file in its place)
  rmSync(join(copy, '.cli-bundle'), { recursive: true });
  writeFileSync(join(copy, '.cli-bundle'), '');
  const fallback = await xcr(['--help']);
  expect(fallback).toMatchObject({ code: 0 });
  expect(fallback.stdout).toContain('through tsx');
});
