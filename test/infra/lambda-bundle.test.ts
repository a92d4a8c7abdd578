import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../functions/config/load.js';
import { BATCH_SIZE } from '../../functions/replication/contract.js';
import { BUNDLED_CONFIG_NAME, ESM_REQUIRE_BANNER } from '../../infra/step-lambdas.js';

// The finish-run entry bundled as the CDK app bundles it (ES module, everything inlined, the require
// banner), then invoked in a fresh Node process with the bundled config, against a local EventBridge.
const dir = mkdtempSync(join(tmpdir(), 'xcr-bundle-'));
let server: Server;
let endpoint = '';
const requests: { target: string; body: unknown }[] = [];

beforeAll(async () => {
  await build({
    entryPoints: ['functions/handlers/lambda/finish-run.ts'],
    outfile: join(dir, 'index.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    mainFields: ['module', 'main'],
    banner: { js: ESM_REQUIRE_BANNER },
    logLevel: 'silent',
  });
  writeFileSync(join(dir, BUNDLED_CONFIG_NAME), JSON.stringify(loadConfigFile('xcr.config.example.json')));
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      requests.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function invoke(input: unknown): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `const m = await import(${JSON.stringify(join(dir, 'index.mjs'))});
try { process.stdout.write('RESULT ' + JSON.stringify(await m.handler(${JSON.stringify(input)})) + '\\n'); }
catch (e) { process.stdout.write('ERROR ' + e.name + '\\n'); }`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: {
        PATH: process.env.PATH,
        XCR_CONFIG_FILE: join(dir, BUNDLED_CONFIG_NAME),
        XCR_LEASE_TABLE: 'xcr-leases',
        XCR_RUN_TABLE: 'xcr-runs',
        XCR_EVENT_BUS: 'xcr-bus',
        AWS_REGION: 'eu-west-1',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'not-a-real-key',
        AWS_ENDPOINT_URL_EVENTBRIDGE: endpoint,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        POWERTOOLS_METRICS_NAMESPACE: 'xcr',
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the bundled Lambda entry', () => {
  it('loads as an ES module, reads the bundled config, publishes the run event, flushes EMF metrics', async () => {
    const r = await invoke({
      jobId: 'web',
      runId: 'exec-2',
      startedAt: '2026-11-26T18:00:00.000Z',
      status: 'skipped',
      reason: 'run exec-1 of job web is still running',
      vmCount: 0,
      batchSize: BATCH_SIZE,
      batch: { index: 0, count: 0 },
    });
    expect(r.stderr, r.stderr).not.toMatch(/Dynamic require|is not defined/);
    expect(r.stdout, r.stderr).toContain('RESULT ');
    const result = JSON.parse(
      r.stdout
        .split('\n')
        .find((l) => l.startsWith('RESULT '))!
        .slice(7),
    );
    expect(result).toMatchObject({ jobId: 'web', runId: 'exec-2', status: 'skipped' });
    expect(requests).toHaveLength(1);
    expect(requests[0]!.target).toBe('AWSEvents.PutEvents');
    const entry = (requests[0]!.body as { Entries: Record<string, string>[] }).Entries[0]!;
    expect(entry).toMatchObject({ Source: 'xcr', DetailType: 'xcr run skipped', EventBusName: 'xcr-bus' });
    const emf = r.stdout
      .split('\n')
      .filter((l) => l.includes('"_aws"'))
      .map((l) => JSON.parse(l));
    expect(emf).toContainEqual(expect.objectContaining({ service: 'xcr', jobId: 'web', RunSkipped: 1 }));
  });

  it('a handler error keeps its ASL name across the bundle', async () => {
    const r = await invoke({
      jobId: 'unknown-job',
      runId: 'x',
      startedAt: 'x',
      status: 'skipped',
      vmCount: 0,
      batchSize: BATCH_SIZE,
      batch: { index: 0, count: 0 },
    });
    expect(r.stdout).toContain('ERROR ConfigError');
  });
});
