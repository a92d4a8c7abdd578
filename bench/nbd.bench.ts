/**
 * NBD client benchmarks against nbdkit's pattern plugin (no disk I/O on the server side).
 * Baseline: libnbd's nbdcopy reading the same export to `null:` in the same run, with the same
 * number of connections. Figures (throughput ratios, higher is better):
 * - nbd.client_read_ratio: one NbdClient connection / `nbdcopy --connections=1`.
 * - nbd.pool_read_ratio: NbdPool with 4 connections / `nbdcopy --connections=4`.
 * Absolute MB/s go in extra fields; this machine is shared, so only the ratios mean much. Beside
 * each figure, the server's (nbdkit's) CPU seconds per GB read for both sides, and this process's
 * (xcr's): medians over the repeats.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { promisify } from 'node:util';
import type { NbdReader } from '../functions/nbd/client.js';
import { NbdClient } from '../functions/nbd/client.js';
import { NbdPool } from '../functions/nbd/pool.js';
import { median, processCpuSeconds, report } from '../test/support/figure.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 512 * MiB;
const WINDOW = 8 * MiB;
const REPEATS = 3;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  if (!a || typeof a === 'string') throw new Error('no port');
  return a.port;
}

async function startNbdkit(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'nbdkit',
    ['-f', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'pattern', `size=${SIZE}`],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (ok) return { port, child };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('nbdkit did not start');
}

/** Reads the whole export through `reader`, keeping `inFlight` windows outstanding, into reused buffers. */
async function readAll(reader: NbdReader, inFlight: number): Promise<number> {
  const buffers = Array.from({ length: inFlight }, () => Buffer.allocUnsafe(WINDOW));
  const started = performance.now();
  let next = 0;
  await Promise.all(
    buffers.map(async (buf) => {
      while (next < reader.size) {
        const at = next;
        next += WINDOW;
        await reader.readInto(at, buf.subarray(0, Math.min(WINDOW, reader.size - at)));
      }
    }),
  );
  return SIZE / MiB / ((performance.now() - started) / 1000);
}

async function nbdcopy(port: number, connections: number): Promise<number> {
  const started = performance.now();
  await run('nbdcopy', [`--connections=${connections}`, `nbd://127.0.0.1:${port}`, 'null:']);
  return SIZE / MiB / ((performance.now() - started) / 1000);
}

const GB = SIZE / 1e9;
const round = (x: number) => Number(x.toFixed(2));
const { port, child } = await startNbdkit();
/** CPU seconds per GB read of the server during `fn`, and of this process. */
const cpu = { server: new Map<string, number[]>(), xcr: new Map<string, number[]>() };
async function measured<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const [s0, x0] = [await processCpuSeconds(child.pid!), process.cpuUsage()];
  const out = await fn();
  const x = process.cpuUsage(x0);
  const add = (m: Map<string, number[]>, v: number) => m.set(key, [...(m.get(key) ?? []), v]);
  add(cpu.server, ((await processCpuSeconds(child.pid!)) - s0) / GB);
  add(cpu.xcr, (x.user + x.system) / 1e6 / GB);
  return out;
}
const cpuFields = (ours: string, base: string) => ({
  xcrCpuSecondsPerGB: round(median(cpu.xcr.get(ours)!)),
  serverCpuSecondsPerGB: round(median(cpu.server.get(ours)!)),
  baselineServerCpuSecondsPerGB: round(median(cpu.server.get(base)!)),
});
try {
  const base1: number[] = [];
  const ours1: number[] = [];
  const base4: number[] = [];
  const ours4: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    base1.push(await measured('base1', () => nbdcopy(port, 1)));
    const client = await NbdClient.connect({ host: '127.0.0.1', port, exportName: '' });
    ours1.push(await measured('ours1', () => readAll(client, 2)));
    await client.close();
    base4.push(await measured('base4', () => nbdcopy(port, 4)));
    const pool = await NbdPool.open([{ address: '127.0.0.1', port, exportname: '' }], {
      insecure: true,
      connections: 4,
    });
    ours4.push(await measured('ours4', () => readAll(pool, 4)));
    await pool.close();
  }
  report({
    name: 'nbd.client_read_ratio',
    value: median(ours1) / median(base1),
    unit: 'ratio',
    baseline: 'nbdcopy --connections=1',
    mb_s: median(ours1),
    baseline_mb_s: median(base1),
    ...cpuFields('ours1', 'base1'),
  });
  report({
    name: 'nbd.pool_read_ratio',
    value: median(ours4) / median(base4),
    unit: 'ratio',
    baseline: 'nbdcopy --connections=4',
    mb_s: median(ours4),
    baseline_mb_s: median(base4),
    ...cpuFields('ours4', 'base4'),
  });
} finally {
  child.kill('SIGTERM');
}
