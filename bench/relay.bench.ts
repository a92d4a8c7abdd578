/**
 * Relay benchmarks: stream-delta between two simulator processes on loopback.
 * - relay.ratio_vs_node_pipe: throughput of the product's relay (export → VHD verifier → meter →
 *   import with tasks) of a VHD with 4 GiB allocated, divided by a relay that does no work at all
 *   (node:http GET of the export piped into a node:http PUT of the import) between the same two
 *   simulator processes into the same destination. Alternating runs, median of 5 each. Beside it,
 *   the simulators' own CPU seconds per GB relayed (`simCpuSecondsPerGB`) for each mode.
 * - relay.rss_mib_32g_bundled: peak RSS of the relay of a 32 GiB-allocated disk, run the way the
 *   Lambda runs it: the relay bundled by esbuild (the step Lambdas' options) and run by plain node,
 *   no loader (the destination SR is of type "dummy", which like XenServer's dummy SR accepts writes
 *   and keeps no data).
 * RELAY_GIB / RELAY_RSS_GIB / RELAY_ROUNDS shrink them to check the script.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { vhdStreamLength } from '../functions/vhd/index.js';
import { Xapi } from '../functions/xapi/index.js';
import { ESM_REQUIRE_BANNER } from '../infra/step-lambdas.js';
import { median, report } from '../test/support/figure.js';
import { type SimProcessPool, startSimProcess } from '../test/support/sim-process.js';

const root = join(import.meta.dirname, '..');
const GiB = 2 ** 30;
const BLOCK = 2 * 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), 'xcr-relay-'));

async function setUp(sizeGiB: number, destinationType: string) {
  const source = await startSimProcess(dir, 'src', {
    name: 'src',
    srs: [{ name_label: 'Local storage', sizeBytes: 2 * sizeGiB * GiB }],
    vms: [
      {
        name_label: 'big',
        disks: [{ sizeBytes: sizeGiB * GiB, data: [{ offset: 0, length: sizeGiB * GiB, byte: 0x5a }] }],
      },
    ],
  });
  const destination = await startSimProcess(dir, 'dst', {
    name: 'dst',
    srs: [{ name_label: 'Replica storage', sizeBytes: 64 * sizeGiB * GiB, type: destinationType }],
  });
  const connect = (p: SimProcessPool) =>
    Xapi.connect({ url: p.url, username: p.username, password: p.password, allowPlainHttp: true });
  const [src, dst] = [await connect(source.pool), await connect(destination.pool)];
  const vdi = [...(await src.getAllRecords('VDI')).values()].find((v) => v.virtual_size === sizeGiB * GiB)!;
  const sr = [...(await dst.getAllRecords('SR')).keys()][0]!;
  const newTarget = async () =>
    (
      await dst.getRecord(
        'VDI',
        await dst.call<string>('VDI.create', {
          name_label: 'target',
          SR: sr,
          virtual_size: sizeGiB * GiB,
          type: 'user',
          sharable: false,
          read_only: false,
          other_config: {},
        }),
      )
    ).uuid;
  const stop = async () => {
    await Promise.allSettled([src.logout(), dst.logout()]);
    source.stop();
    destination.stop();
  };
  const simCpu = async () => (await source.cpuSeconds()) + (await destination.cpuSeconds());
  return { source: source.pool, destination: destination.pool, vdi: vdi.uuid, newTarget, stop, simCpu };
}

/** The relay child bundled as the step Lambdas are (esbuild, ESM, minified, the same banner). */
async function bundleRelay(): Promise<string> {
  const outfile = join(dir, 'relay-child.mjs');
  await build({
    entryPoints: [join(root, 'bench/relay-child.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    outfile,
    banner: { js: ESM_REQUIRE_BANNER },
    logLevel: 'warning',
  });
  return outfile;
}

/** Runs one relay in a child process (asynchronously: this process keeps its own sockets alive). */
async function relay(
  mode: 'node-pipe' | 'xcr',
  env: Awaited<ReturnType<typeof setUp>>,
  target: string,
  length: number,
  bundle?: string,
) {
  const cpuBefore = await env.simCpu();
  const child = spawn(
    process.execPath,
    [
      ...(bundle ? [bundle] : ['--import', 'tsx', join(root, 'bench/relay-child.ts')]),
      mode,
      JSON.stringify(env.source),
      JSON.stringify(env.destination),
      env.vdi,
      target,
    ],
    { env: { ...process.env, RELAY_LENGTH: String(length) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`relay ${mode} failed (exit ${code}): ${out.slice(-2000)}`);
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    bytes: number;
    mbPerSecond: number;
    peakRssMiB: number;
  };
  return { ...r, simCpuSecondsPerGB: ((await env.simCpu()) - cpuBefore) / (r.bytes / 1e9) };
}

const round3 = (x: number) => Number(x.toFixed(3));

try {
  const sizeGiB = Number(process.env.RELAY_GIB ?? 4);
  // A dummy SR on the destination: the import path parses and checks everything but keeps no bytes,
  // so six relays of 4 GiB do not need 24 GiB of memory in the destination simulator.
  const env = await setUp(sizeGiB, 'dummy');
  const length = vhdStreamLength(sizeGiB * GiB, BLOCK, (sizeGiB * GiB) / BLOCK);
  const rounds = Number(process.env.RELAY_ROUNDS ?? 5);
  const runs = { 'node-pipe': [] as { mb: number; cpu: number }[], xcr: [] as { mb: number; cpu: number }[] };
  try {
    for (let i = 0; i < rounds; i++) {
      // alternate which mode goes first, so neither always runs on a warmer simulator
      const order = i % 2 ? (['xcr', 'node-pipe'] as const) : (['node-pipe', 'xcr'] as const);
      for (const mode of order) {
        process.stderr.write(`relay: ${mode} round ${i + 1}\n`);
        const r = await relay(mode, env, await env.newTarget(), length);
        if (r.bytes !== length) throw new Error(`${mode} relayed ${r.bytes} bytes, expected ${length}`);
        runs[mode].push({ mb: r.mbPerSecond, cpu: r.simCpuSecondsPerGB });
      }
    }
  } finally {
    await env.stop();
  }
  const mb = (mode: keyof typeof runs) => median(runs[mode].map((r) => r.mb));
  const cpu = (mode: keyof typeof runs) => round3(median(runs[mode].map((r) => r.cpu)));
  report({
    name: 'relay.ratio_vs_node_pipe',
    value: round3(mb('xcr') / mb('node-pipe')),
    unit: 'ratio',
    baseline: `node:http GET piped into node:http PUT of the same ${length} bytes between the same two simulator processes (destination SR type dummy): ${mb('node-pipe').toFixed(0)} MB/s (xcr ${mb('xcr').toFixed(0)} MB/s), median of ${rounds}, alternating`,
    simCpuSecondsPerGB: cpu('xcr'),
    baselineSimCpuSecondsPerGB: cpu('node-pipe'),
  });

  const bigGiB = Number(process.env.RELAY_RSS_GIB ?? 32);
  const bundle = await bundleRelay();
  const big = await setUp(bigGiB, 'dummy');
  try {
    const r = await relay(
      'xcr',
      big,
      await big.newTarget(),
      vhdStreamLength(bigGiB * GiB, BLOCK, (bigGiB * GiB) / BLOCK),
      bundle,
    );
    report({
      name: 'relay.rss_mib_32g_bundled',
      value: Math.round(r.peakRssMiB),
      unit: 'MiB',
      baseline: `absolute: peak RSS (VmHWM) of the esbuild-bundled relay under plain node over ${bigGiB} GiB allocated (${r.mbPerSecond.toFixed(0)} MB/s)`,
      simCpuSecondsPerGB: round3(r.simCpuSecondsPerGB),
    });
  } finally {
    await big.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
