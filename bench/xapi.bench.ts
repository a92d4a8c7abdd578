/**
 * XAPI client overhead, each against a baseline measured in the same run on the same loopback servers
 * (the in-test XAPI of test/unit/xapi, so the simulator's own costs do not blur the figure):
 * - xapi.stream_ratio: Xapi.exportVdi piped into Xapi.importVdi (tasks, redirect probe, HTTP/ check,
 *   task waits included) / a bare undici GET piped into a bare undici PUT, MB/s over MB/s. Extra fields:
 *   both throughputs.
 * - xapi.rpc_ratio: Xapi.call('pool.get_all') round trips per second / bare undici POSTs of the same call
 *   pre-encoded (the client's cost: encoding, envelope decoding, session and timeout handling).
 * - xapi.stream_peak_rss_mib: peak RSS of this process after streaming 1 GiB through the client
 *   (flat memory: nothing is buffered whole).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { Xapi } from '../functions/xapi/index.js';
import { encodeXmlRpcCall } from '../functions/xapi/marshal.js';
import { type FakeXapi, PASSWORD, startFake, USER } from '../test/support/fake-xapi.js';
import { peakRssMiB, report } from '../test/support/figure.js';

const MiB = 1 << 20;
const SIZE = 256 * MiB;
const CHUNK = 64 * 1024;
const REPEATS = 3;
const shared = Buffer.alloc(CHUNK, 0x5a);

let exportSize = SIZE;

function dataRoutes(f: FakeXapi): void {
  f.routes.push(async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const task = url.searchParams.get('task_id') ?? '';
    if (url.pathname === '/export_raw_vdi') {
      res.writeHead(200, { connection: 'close', 'content-type': 'application/octet-stream' });
      for (let sent = 0; sent < exportSize; sent += CHUNK) {
        if (!res.write(shared)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
      if (task) f.finishTask(task, { result: '' });
      return true;
    }
    if (url.pathname === '/import_raw_vdi') {
      for await (const _ of req) {
        // discard, as fast as the socket delivers
      }
      res.writeHead(200, { connection: 'close' }).end();
      if (task) f.finishTask(task, { result: '<value>OpaqueRef:t</value>' });
      return true;
    }
    return false;
  });
}

async function viaClient(x: Xapi, size: number): Promise<number> {
  exportSize = size;
  const t0 = performance.now();
  const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' });
  await x.importVdi({ vdi: 'OpaqueRef:t', format: 'raw', body: e.body, contentLength: size });
  await e.done;
  return size / 1e6 / ((performance.now() - t0) / 1000);
}

async function bare(base: string, size: number): Promise<number> {
  exportSize = size;
  const t0 = performance.now();
  const src = await request(`${base}/export_raw_vdi?vdi=v&format=raw`);
  const dst = await request(`${base}/import_raw_vdi?vdi=t&format=raw`, {
    method: 'PUT',
    headers: { 'content-length': String(size) },
    body: src.body,
  });
  await dst.body.dump();
  return size / 1e6 / ((performance.now() - t0) / 1000);
}

const best = (xs: number[]) => Math.max(...xs);

const fake = await startFake();
dataRoutes(fake);
const x = await Xapi.connect({ url: fake.url, username: USER, password: PASSWORD, allowPlainHttp: true });
try {
  // Warm up both paths once, then alternate so drift on a noisy machine hits both alike.
  await bare(fake.url, 32 * MiB);
  await viaClient(x, 32 * MiB);
  const client: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    baseline.push(await bare(fake.url, SIZE));
    client.push(await viaClient(x, SIZE));
  }
  report({
    name: 'xapi.stream_ratio',
    value: Number((best(client) / best(baseline)).toFixed(3)),
    unit: 'ratio',
    baseline: 'bare undici GET piped into PUT, same servers, same run',
    client_mb_s: Math.round(best(client)),
    baseline_mb_s: Math.round(best(baseline)),
  });

  const N = 500;
  fake.methods.set('pool.get_all', () => ['OpaqueRef:pool']);
  const session = [...fake.sessions][0]!;
  const body = encodeXmlRpcCall('pool.get_all', [session]);
  const rate = async (fn: () => Promise<unknown>) => {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await fn();
    return N / ((performance.now() - t0) / 1000);
  };
  const rpcClient: number[] = [];
  const rpcBare: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    rpcBare.push(
      await rate(async () => {
        const r = await request(fake.url, { method: 'POST', body, headers: { 'content-type': 'text/xml' } });
        await r.body.text();
      }),
    );
    rpcClient.push(await rate(() => x.call('pool.get_all')));
  }
  report({
    name: 'xapi.rpc_ratio',
    value: Number((best(rpcClient) / best(rpcBare)).toFixed(3)),
    unit: 'ratio',
    baseline: 'bare undici POST of a pre-encoded XML-RPC body, same server, same run',
    client_calls_s: Math.round(best(rpcClient)),
    baseline_calls_s: Math.round(best(rpcBare)),
  });

  await viaClient(x, 1024 * MiB);
  report({ name: 'xapi.stream_peak_rss_mib', value: Math.round(await peakRssMiB()), unit: 'MiB' });
} finally {
  await x.logout();
  await fake.close();
}
