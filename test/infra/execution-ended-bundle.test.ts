import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLING_DEFAULTS } from '../../infra/step-lambdas.js';

const dir = mkdtempSync(join(tmpdir(), 'xcr-ended-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the execution-ended Lambda entry', () => {
  it('bundles as the CDK app bundles it and ignores executions that need no cleanup, without touching AWS', async () => {
    const outfile = join(dir, 'index.mjs');
    await build({
      entryPoints: ['functions/handlers/lambda/execution-ended.ts'],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      mainFields: [...BUNDLING_DEFAULTS.mainFields],
      banner: { js: BUNDLING_DEFAULTS.banner },
      logLevel: 'silent',
    });
    const m = (await import(pathToFileURL(outfile).href)) as { handler: (e: unknown) => Promise<unknown> };
    // No lease table is configured: anything beyond "ignored" would throw.
    const out = await m.handler({
      detail: { name: 'web-1', status: 'SUCCEEDED', startDate: 0, input: '{"jobId":"web"}' },
    });
    expect(out).toEqual({ ignored: 'SUCCEEDED' });
    await expect(
      m.handler({ detail: { name: 'web-1', status: 'ABORTED', startDate: 0, input: '{"jobId":"web"}' } }),
    ).rejects.toThrow(/XCR_LEASE_TABLE is not set/);
    // a failover rule's input: the workflow and the detail
    const failover = (status: string) => ({
      workflow: 'failover',
      detail: { name: 'fo-1', status, startDate: 0, input: '{"jobId":"web","run":"fo-0"}' },
    });
    expect(await m.handler(failover('SUCCEEDED'))).toEqual({ ignored: 'SUCCEEDED' });
    await expect(m.handler(failover('TIMED_OUT'))).rejects.toThrow(/XCR_LEASE_TABLE is not set/);
  }, 120_000);
});
