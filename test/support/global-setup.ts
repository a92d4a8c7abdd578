import { parseConfig } from '../../functions/config/load.js';
import { ensureTools } from './ensure-tools.js';
import { definitionFor } from './run-local.js';

/**
 * Checks the external tools every test may run (`npm test` has done so already; this covers
 * `npx vitest run …`), then synthesizes the workflow definitions the integration suites run once,
 * before any test file starts, so no test pays the seconds of loading aws-cdk-lib in its timeout.
 */
export default function setup(): void {
  ensureTools();
  const config = parseConfig({
    version: 1,
    pools: {
      a: { url: 'http://127.0.0.1:1', password: { env: 'A' }, allowPlainHttp: true },
      b: { url: 'http://127.0.0.1:2', password: { env: 'B' }, allowPlainHttp: true },
    },
    jobs: [
      {
        id: 'job1',
        source: { pool: 'a' },
        destination: { pool: 'b', sr: { name: 'x' } },
        vms: { tag: 'x' },
        schedule: { rate: '10 minutes' },
      },
    ],
  });
  for (const concurrency of [1, 2, 3, 4]) definitionFor(config, { ...config.jobs[0]!, concurrency });
}
