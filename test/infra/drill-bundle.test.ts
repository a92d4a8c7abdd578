import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../functions/config/load.js';
import { DRILL_STEP_NAMES } from '../../functions/replication/drill/contract.js';
import { BUNDLED_CONFIG_NAME, ESM_REQUIRE_BANNER } from '../../infra/step-lambdas.js';

// Every drill entry bundled as the CDK app bundles it, loaded in a fresh Node process with the
// bundled config: a malformed input comes back as the ASL error name the state machine sees.
const dir = mkdtempSync(join(tmpdir(), 'xcr-drill-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the drill Lambda entries', () => {
  it('bundle as ES modules, read the bundled config and keep the error name', async () => {
    await build({
      entryPoints: DRILL_STEP_NAMES.map((s) => `functions/handlers/lambda/drill-${s}.ts`),
      outdir: dir,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      mainFields: ['module', 'main'],
      banner: { js: ESM_REQUIRE_BANNER },
      logLevel: 'silent',
    });
    writeFileSync(join(dir, BUNDLED_CONFIG_NAME), JSON.stringify(loadConfigFile('xcr.config.example.json')));
    for (const step of DRILL_STEP_NAMES) {
      const script = `const m = await import(${JSON.stringify(join(dir, `drill-${step}.mjs`))});
try { await m.handler({ jobId: 'web', unexpected: true }); process.stdout.write('RESULT'); }
catch (e) { process.stdout.write('ERROR ' + e.name + ' ' + e.message.split('\\n')[0]); }`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
        env: {
          PATH: process.env.PATH,
          XCR_CONFIG_FILE: join(dir, BUNDLED_CONFIG_NAME),
          XCR_LEASE_TABLE: 'xcr-leases',
          AWS_REGION: 'eu-west-1',
          POWERTOOLS_METRICS_NAMESPACE: 'xcr',
        },
        timeout: 60_000,
      });
      expect(stdout, step).toBe(`ERROR ConfigError invalid configuration (${step} input):`);
    }
  }, 180_000);
});
