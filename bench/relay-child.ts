/**
 * One relay of a disk between two simulator processes, in its own process so that its peak RSS is
 * its own. Mode `xcr`: the product's stream-delta path (export → VHD verifier → meter → import with
 * the exact Content-Length, tasks and all). Mode `node-pipe`: the same bytes relayed with no parsing
 * at all (node:http GET of the export piped into a node:http PUT of the import). Prints one JSON line.
 * Also bundled with esbuild and run by plain node (bench/relay.bench.ts), as the Lambda runs it.
 */
import http from 'node:http';
import { streamDisk } from '../functions/replication/transfer.js';
import { Xapi } from '../functions/xapi/index.js';
import { peakRssMiB } from '../test/support/figure.js';

interface PoolInfo {
  url: string;
  username: string;
  password: string;
}
const [mode, srcJson, dstJson, vdiUuid, targetUuid] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const src = JSON.parse(srcJson) as PoolInfo;
const dst = JSON.parse(dstJson) as PoolInfo;
const connect = (p: PoolInfo) =>
  Xapi.connect({ url: p.url, username: p.username, password: p.password, allowPlainHttp: true });
const source = await connect(src);
const destination = await connect(dst);
const vdi = await source.getByUuid('VDI', vdiUuid);
const target = await destination.getByUuid('VDI', targetUuid);
const size = (await destination.getRecord('VDI', target)).virtual_size;

const started = performance.now();
let bytes: number;
if (mode === 'xcr') {
  bytes = await streamDisk({ source, destination, vdi, target, targetSize: size, timeoutMs: 3_600_000 });
} else {
  // The baseline does no work at all: node:http GET of the export piped into a node:http PUT of the
  // import (sessions from a JSON-RPC login before the clock starts would be fairer still, but the
  // product's mode makes its own calls inside the timing too, so logins stay inside here as well).
  const login = async (p: PoolInfo) => {
    const res = await fetch(`${p.url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.login_with_password',
        params: [p.username, p.password],
      }),
    });
    return ((await res.json()) as { result: string }).result;
  };
  const [s1, s2] = [await login(src), await login(dst)];
  // The VHD length is what the xcr mode computes from the header; here it is taken from the same source.
  const length = Number(process.env.RELAY_LENGTH);
  bytes = await new Promise<number>((resolve, reject) => {
    http
      .get(`${src.url}/export_raw_vdi?session_id=${s1}&vdi=${vdiUuid}&format=vhd`, (exp) => {
        const imp = http.request(
          `${dst.url}/import_raw_vdi?session_id=${s2}&vdi=${targetUuid}&format=vhd`,
          { method: 'PUT', headers: { 'content-length': String(length) } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(length));
          },
        );
        imp.on('error', reject);
        exp.on('error', reject);
        exp.pipe(imp);
      })
      .on('error', reject);
  });
}
const seconds = (performance.now() - started) / 1000;
process.stdout.write(
  `${JSON.stringify({ mode, bytes, seconds, mbPerSecond: bytes / 1e6 / seconds, peakRssMiB: await peakRssMiB() })}\n`,
);
await source.logout();
await destination.logout();
