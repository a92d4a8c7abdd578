/**
 * sim.export_ratio: throughput of `GET /export_raw_vdi?format=vhd` of a VDI with 2 GiB allocated,
 * consumed over loopback with undici, divided by the throughput of serving the same number of bytes
 * from a plain file through a minimal node:http server, measured in the same run.
 *
 * The VDI's 1024 blocks are filled by region with 16 distinct byte values, so blocks share 16
 * frozen buffers (first-touching 2 GiB of fresh memory costs ~30 s on hosts with slow page faults;
 * the export path reads block buffers exactly as it would distinct ones).
 */
import { once } from 'node:events';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startPool } from '../sim/index.js';
import { peakRssMiB, report } from '../test/support/figure.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ALLOCATED = 2 * GiB;
const RUNS = 2;

async function consume(url: string): Promise<{ bytes: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const r = await request(url);
  if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode} from ${url}`);
  let bytes = 0;
  for await (const chunk of r.body) bytes += (chunk as Buffer).length;
  return { bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function main(): Promise<void> {
  const regions = 16;
  const pool = await startPool({
    name: 'bench',
    password: 'bench',
    srs: [{ name_label: 'sr', sizeBytes: 4 * GiB }],
    vms: [
      {
        name_label: 'big',
        disks: [
          {
            sizeBytes: ALLOCATED,
            data: Array.from({ length: regions }, (_, i) => ({
              offset: (i * ALLOCATED) / regions,
              length: ALLOCATED / regions,
              byte: 0x11 + i,
            })),
          },
        ],
      },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'sim-bench-'));
  const file = join(dir, 'plain.bin');
  const plain = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    createReadStream(file, { highWaterMark: 2 * MiB }).pipe(res);
  });
  try {
    const login = await request(pool.url, {
      method: 'POST',
      body:
        '<?xml version="1.0"?><methodCall><methodName>session.login_with_password</methodName><params>' +
        '<param><value>root</value></param><param><value>bench</value></param></params></methodCall>',
    });
    const session = /OpaqueRef:[0-9a-f-]+/.exec(await login.body.text())?.[0];
    if (!session) throw new Error('login failed');
    const [[, vdi]] = [pool.test.objects('VDI')[0]!];
    const exportUrl = `${pool.url}/export_raw_vdi?session_id=${session}&vdi=${vdi.uuid}&format=vhd`;

    const warm = await consume(exportUrl);
    // the baseline file: exactly as many bytes, written with the same kind of content
    const fd = openSync(file, 'w');
    const chunk = Buffer.alloc(2 * MiB);
    for (let left = warm.bytes, i = 0; left > 0; i++) {
      chunk.fill(0x11 + (i % regions));
      left -= writeSync(fd, chunk, 0, Math.min(chunk.length, left));
    }
    closeSync(fd);
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    const plainUrl = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/`;
    await consume(plainUrl);

    const sim: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const a = await consume(exportUrl);
      const b = await consume(plainUrl);
      if (a.bytes !== warm.bytes || b.bytes !== warm.bytes)
        throw new Error(`byte counts differ: ${a.bytes} ${b.bytes} ${warm.bytes}`);
      sim.push(a.bytes / a.seconds);
      base.push(b.bytes / b.seconds);
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const simRate = mean(sim);
    const baseRate = mean(base);
    report({
      name: 'sim.export_ratio',
      value: Number((simRate / baseRate).toFixed(3)),
      unit: 'ratio',
      baseline: 'plain file over node:http',
    });
    report({
      name: 'sim.export_throughput',
      value: Number((simRate / MiB).toFixed(1)),
      unit: 'MiB/s',
      baseline: 'plain file over node:http',
    });
    report({ name: 'sim.plain_file_throughput', value: Number((baseRate / MiB).toFixed(1)), unit: 'MiB/s' });
    report({ name: 'sim.bench_peak_rss', value: Number((await peakRssMiB()).toFixed(0)), unit: 'MiB' });
  } finally {
    plain.close();
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
