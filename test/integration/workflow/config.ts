import { parseConfig } from '../../../functions/config/load.js';

/** Two jobs with different concurrency; passwords are env references (local runs), as in real use. */
export const workflowTestConfig = parseConfig({
  version: 1,
  pools: {
    a: { url: 'http://127.0.0.1:1', allowPlainHttp: true, password: { env: 'XCR_TEST_A' } },
    b: { url: 'http://127.0.0.1:2', allowPlainHttp: true, password: { env: 'XCR_TEST_B' } },
  },
  jobs: [
    {
      id: 'web',
      source: { pool: 'a' },
      destination: { pool: 'b', sr: { name: 'Local storage' } },
      vms: { tag: 'replicate' },
      schedule: { rate: '15 minutes' },
      concurrency: 3,
    },
    {
      id: 'wide',
      source: { pool: 'a' },
      destination: { pool: 'b', sr: { name: 'Local storage' } },
      vms: { tag: 'all' },
      schedule: { rate: '1 hour' },
      concurrency: 40,
    },
  ],
});
