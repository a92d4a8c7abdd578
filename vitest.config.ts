import { defineConfig } from 'vitest/config';

// CI asks for a JSON report (XCR_VITEST_JSON) to print the plain "N passed, N failed" line.
const jsonReport = process.env.XCR_VITEST_JSON;
// The failover/failback fault matrix waits on simulated boots and the GC for ~13 minutes: it runs
// with `npm run test:failover-faults` (XCR_SLOW_TESTS=1), not in npm test's 15-minute budget.
const slow = ['test/faults/failover-matrix.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...(process.env.XCR_SLOW_TESTS ? [] : slow)],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    ...(jsonReport ? { reporters: ['default', 'json'], outputFile: { json: jsonReport } } : {}),
  },
});
