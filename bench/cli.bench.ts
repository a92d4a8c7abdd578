/**
 * The `xcr` command as users run it (bin/xcr.js: the CLI bundle, rebuilt first if a source changed),
 * against two simulated pools.
 * - cli.run_noop_seconds: wall time of `xcr run` of a job with nothing changed since its last run
 *   (definition cached, no guest writes), median of 3; target ≤ 1.5 s.
 * - cli.run_peak_rss_mib: the highest peak RSS of those runs; target ≤ 200 MiB.
 * - cli.run_noop_cpu_seconds: CPU time (user + system) of the median run: the wall time on a
 *   machine that is not busy with anything else.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report } from '../test/support/figure.js';
import { MiB, startSites } from '../test/support/sites.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'xcr-bench-cli-'));
const sites = await startSites({
  vms: [
    { name_label: 'vm', disks: [{ sizeBytes: 256 * MiB, data: [{ offset: 0, length: 4 * MiB, seed: 1 }] }] },
  ],
});

function xcrRun(configFile: string): Promise<{ seconds: number; rssMiB: number; cpuSeconds: number }> {
  const rssFile = join(dir, 'rss');
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        join(root, 'bench', 'max-rss.mjs'),
        join(root, 'bin', 'xcr.js'),
        'run',
        '-c',
        configFile,
        '--json',
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          XCR_STATE_DIR: join(dir, 'state'),
          XCR_TEST_A: sites.source.password,
          XCR_TEST_B: sites.destination.password,
          XCR_BENCH_RSS_FILE: rssFile,
        },
      },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) return reject(new Error(`xcr run exited ${code}: ${out}`));
      const status = (JSON.parse(out) as { status: string }).status;
      if (status !== 'succeeded') return reject(new Error(`run ${status}`));
      const usage = JSON.parse(readFileSync(rssFile, 'utf8')) as { maxRSS: number; cpuMicros: number };
      resolve({ seconds, rssMiB: usage.maxRSS / 1024, cpuSeconds: usage.cpuMicros / 1e6 });
    });
  });
}

try {
  const configFile = join(dir, 'xcr.json');
  writeFileSync(configFile, JSON.stringify(sites.config));
  await xcrRun(configFile); // first run: full copy (and the bundle and the definition, if not built yet)
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await xcrRun(configFile));
  const seconds = runs.map((r) => r.seconds).sort((a, b) => a - b)[1]!;
  report({
    name: 'cli.run_noop_seconds',
    value: Number(seconds.toFixed(2)),
    unit: 's',
    baseline: 'target ≤ 1.5 s (was about 5 s when every run synthesized the CDK app)',
  });
  const cpu = runs.map((r) => r.cpuSeconds).sort((a, b) => a - b)[1]!;
  report({ name: 'cli.run_noop_cpu_seconds', value: Number(cpu.toFixed(2)), unit: 's' });
  report({
    name: 'cli.run_peak_rss_mib',
    value: Math.round(Math.max(...runs.map((r) => r.rssMiB))),
    unit: 'MiB',
    baseline: 'target ≤ 200 MiB (was about 510 MiB when every run synthesized the CDK app)',
  });
} finally {
  await sites.close();
  rmSync(dir, { recursive: true, force: true });
}
