/** startPool(): build a pool's objects from a spec and give each host its own listener. */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { registerCbt } from './api/cbt.js';
import { registerCore } from './api/core.js';
import { registerFirmware } from './api/firmware.js';
import { registerImplicit } from './api/implicit.js';
import { Registry } from './api/registry.js';
import { makeTestApi, registerTestApi } from './api/testapi.js';
import { registerVdi } from './api/vdi.js';
import { registerVm } from './api/vm.js';
import { registerHostMemory } from './api/vm-start.js';
import { registerVtpm } from './api/vtpm.js';
import { handleExport } from './http/export.js';
import { handleImport } from './http/import.js';
import { type Handler, Router } from './http/router.js';
import { handleJsonRpc, handleXmlRpc, http500 } from './http/rpc.js';
import { NbdHosts } from './nbd-hosts.js';
import { populate } from './populate.js';
import { PoolState } from './state.js';
import { PoolStorage } from './storage/index.js';
import type { SimPool, SimPoolSpec } from './types.js';

export function buildRegistry(testApi: boolean): Registry {
  const reg = new Registry();
  registerImplicit(reg);
  registerCore(reg);
  registerVm(reg);
  registerHostMemory(reg);
  registerFirmware(reg);
  registerVtpm(reg);
  registerVdi(reg);
  registerCbt(reg);
  if (testApi) registerTestApi(reg);
  return reg;
}

function route(reg: Registry, pool: PoolState, host: number): Handler {
  const guard =
    (run: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Handler =>
    (req, res) => {
      run(req, res).catch((e: unknown) => {
        if (!res.headersSent) http500(res, e instanceof Error ? e.message : String(e));
        else res.destroy();
      });
    };
  const options: Handler = (_req, res) => {
    res.writeHead(200, {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': 'content-type',
      'access-control-allow-methods': 'POST, OPTIONS',
      'content-length': 0,
    });
    res.end();
  };
  // xapi's static file server answers 404 for files it does not have; the simulator serves none
  const noFile: Handler = (req, res) => {
    req.resume();
    res.writeHead(404, { 'content-type': 'text/html', 'content-length': 0, connection: 'close' });
    res.end();
  };
  const router = new Router()
    .add('OPTIONS', '/', options)
    .add('GET', '/', noFile)
    .add(
      'GET',
      '/export_raw_vdi',
      guard((q, r) => handleExport(pool, host, q, r)),
    )
    .add(
      'PUT',
      '/import_raw_vdi',
      guard((q, r) => handleImport(pool, host, q, r)),
    )
    .add(
      'POST',
      '/',
      guard((q, r) => handleXmlRpc(reg, pool, host, q, r)),
    )
    .add(
      'POST',
      '/jsonrpc',
      guard((q, r) => handleJsonRpc(reg, pool, host, q, r)),
    );
  return (req, res) => router.handle(req, res);
}

function listen(server: Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startPool(spec: SimPoolSpec): Promise<SimPool> {
  const nHosts = Math.max(1, spec.hosts ?? 1);
  const pool = new PoolState(
    spec.name,
    spec.username ?? 'root',
    spec.password ?? randomBytes(12).toString('base64url'),
  );
  pool.storage = new PoolStorage(pool, spec.storage);
  pool.faults.bytesPerSecond = spec.limits?.streamBytesPerSecond;
  pool.faults.hostBytesPerSecond = spec.limits?.hostBytesPerSecond;
  pool.scheme = spec.tls ? 'https' : 'http';
  pool.certificate = spec.tls?.cert;
  const reg = buildRegistry(spec.testApi !== false);
  const bind = spec.bindAddress ?? '127.0.0.1';
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  try {
    for (let i = 0; i < nHosts; i++) {
      const handler = route(reg, pool, i);
      const server = spec.tls
        ? createHttps({ cert: spec.tls.cert, key: spec.tls.key }, handler)
        : createHttp(handler);
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      servers.push(server);
      const port = await listen(server, bind);
      const address = `${bind.includes(':') ? `[${bind}]` : bind}:${port}`;
      pool.hosts.push({ ref: '', uuid: randomUUID(), address, url: `${pool.scheme}://${address}` });
    }
  } catch (e) {
    for (const s of servers) s.close();
    throw e;
  }
  if (spec.hostMemoryBytes !== undefined) pool.hostMemoryBytes = spec.hostMemoryBytes;
  pool.guests.rules = [...(spec.guests ?? [])];
  populate(pool, spec);
  pool.nbd = new NbdHosts(pool, bind, spec.tls);
  let closed = false;
  return {
    name: pool.name,
    username: pool.username,
    password: pool.password,
    get url() {
      return pool.master.url;
    },
    hosts: pool.hosts.map((h) => ({ uuid: h.uuid, address: h.address, url: h.url })),
    test: makeTestApi(pool),
    async close() {
      if (closed) return;
      closed = true;
      pool.storage.gc.close();
      pool.guests.stop();
      for (const s of sockets) s.destroy();
      await pool.nbd?.close();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const d of pool.disks.values()) d.release();
    },
  };
}
