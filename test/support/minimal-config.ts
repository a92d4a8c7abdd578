/** The smallest valid configuration (two loopback pools, one job), as raw JSON before parsing. */
export function minimalRawConfig(jobId = 'job1') {
  return {
    version: 1,
    pools: {
      a: { url: 'http://127.0.0.1:1', password: { env: 'A' }, allowPlainHttp: true },
      b: { url: 'http://127.0.0.1:2', password: { env: 'B' }, allowPlainHttp: true },
    },
    jobs: [
      {
        id: jobId,
        source: { pool: 'a' },
        destination: { pool: 'b', sr: { name: 'x' } },
        vms: { tag: 'x' },
        schedule: { rate: '10 minutes' },
      },
    ],
  };
}
