/**
 * Relay benchmarks: stream-delta between two simulator processes on loopback.
 * - relay.ratio_vs_raw: throughput of the product's relay (export → VHD verifier → meter → import
 *   with tasks) of a VHD with 4 GiB allocated, divided by a raw relay of the same bytes between the
 *   same two processes (export body piped into the import request, nothing parsed). Best of 3 each,
 *   alternating.
 * - relay.rss_mib_32g: peak RSS of the process running the relay of a 32 GiB-allocated disk (the
 *   destination SR is of type "dummy", which like XenServer's dummy SR accepts writes and keeps no data).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { vhdStreamLength } from '../functions/vhd/index.js';
import { Xapi } from '../functions/xapi/index.js';
import { report } from '../test/support/figure.js';

const root = join(import.meta.dirname, '..');
const GiB = 2 ** 30;
const BLOCK = 2 * 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), 'xcr-relay-'));

interface PoolInfo {
  name: string;
  url: string;
  username: string;
  password: string;
}

async function startSim(name: string, spec: object): Promise<{ pool: PoolInfo; child: ChildProcess }> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ pools: [spec] }));
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'sim/main.ts'), '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`simulator ${name} exited ${code}`)));
  });
  return { pool: (JSON.parse(line) as { pools: PoolInfo[] }).pools[0]!, child };
}

async function setUp(sizeGiB: number, destinationType: string) {
  const source = await startSim('src', {
    name: 'src',
    srs: [{ name_label: 'Local storage', sizeBytes: 2 * sizeGiB * GiB }],
    vms: [
      {
        name_label: 'big',
        disks: [{ sizeBytes: sizeGiB * GiB, data: [{ offset: 0, length: sizeGiB * GiB, byte: 0x5a }] }],
      },
    ],
  });
  const destination = await startSim('dst', {
    name: 'dst',
    srs: [{ name_label: 'Replica storage', sizeBytes: 64 * sizeGiB * GiB, type: destinationType }],
  });
  const connect = (p: PoolInfo) =>
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
    source.child.kill('SIGTERM');
    destination.child.kill('SIGTERM');
  };
  return { source: source.pool, destination: destination.pool, vdi: vdi.uuid, newTarget, stop };
}

/** Runs one relay in a child process (asynchronously: this process keeps its own sockets alive). */
async function relay(
  mode: 'raw' | 'xcr',
  env: Awaited<ReturnType<typeof setUp>>,
  target: string,
  length: number,
) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'bench/relay-child.ts'),
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
  return JSON.parse(out.trim().split('\n').pop()!) as {
    bytes: number;
    mbPerSecond: number;
    peakRssMiB: number;
  };
}

try {
  const sizeGiB = Number(process.env.RELAY_GIB ?? 4);
  // A dummy SR on the destination: the import path parses and checks everything but keeps no bytes,
  // so six relays of 4 GiB do not need 24 GiB of memory in the destination simulator.
  const env = await setUp(sizeGiB, 'dummy');
  const length = vhdStreamLength(sizeGiB * GiB, BLOCK, (sizeGiB * GiB) / BLOCK);
  const best = { raw: 0, xcr: 0 };
  try {
    for (let i = 0; i < 3; i++) {
      for (const mode of ['raw', 'xcr'] as const) {
        process.stderr.write(`relay: ${mode} round ${i + 1}\n`);
        const r = await relay(mode, env, await env.newTarget(), length);
        if (r.bytes !== length) throw new Error(`${mode} relayed ${r.bytes} bytes, expected ${length}`);
        best[mode] = Math.max(best[mode], r.mbPerSecond);
      }
    }
  } finally {
    await env.stop();
  }
  report({
    name: 'relay.ratio_vs_raw',
    value: Number((best.xcr / best.raw).toFixed(3)),
    unit: 'ratio',
    baseline: `raw relay of the same ${length} bytes between the same two simulator processes (destination SR type dummy): ${best.raw.toFixed(0)} MB/s (xcr ${best.xcr.toFixed(0)} MB/s), best of 3`,
  });

  const bigGiB = Number(process.env.RELAY_RSS_GIB ?? 32);
  const big = await setUp(bigGiB, 'dummy');
  try {
    const r = await relay(
      'xcr',
      big,
      await big.newTarget(),
      vhdStreamLength(bigGiB * GiB, BLOCK, (bigGiB * GiB) / BLOCK),
    );
    report({
      name: 'relay.rss_mib_32g',
      value: Math.round(r.peakRssMiB),
      unit: 'MiB',
      baseline: `absolute: peak RSS (VmHWM) of the relay process over ${bigGiB} GiB allocated (${r.mbPerSecond.toFixed(0)} MB/s)`,
    });
  } finally {
    await big.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
