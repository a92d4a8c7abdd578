/** Spawns independent NBD servers (qemu-nbd, nbdkit) on loopback and makes TLS material with openssl. */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const run = promisify(execFile);

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `xcr-${prefix}-`));
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}): ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server on port ${port} did not start: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Spawned {
  port: number;
  stop(): Promise<void>;
}

/** Starts `command` with `args(port)` on a free loopback port and waits until it accepts connections. */
export async function spawnServer(command: string, args: (port: number) => string[]): Promise<Spawned> {
  const port = await freePort();
  const child = spawn(command, args(port), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  try {
    await waitForPort(port, child, () => err);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export function qemuNbd(file: string, name: string): Promise<Spawned> {
  return spawnServer('qemu-nbd', (port) => [
    '-f',
    'raw',
    '-b',
    '127.0.0.1',
    '-p',
    String(port),
    '-r',
    '-t',
    '-e',
    '16',
    '-x',
    name,
    file,
  ]);
}

/** nbdkit in the foreground on loopback; `extra` = filters, plugin and its parameters. */
export function nbdkit(extra: string[]): Promise<Spawned> {
  return spawnServer('nbdkit', (port) => [
    '-f',
    '--exit-with-parent',
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    ...extra,
  ]);
}

export interface CertFiles {
  dir: string;
  cert: string;
  key: string;
}

/** A self-signed certificate for `name` (+ IP 127.0.0.1), laid out as nbdkit and libnbd expect. */
export async function selfSignedCert(name: string): Promise<CertFiles> {
  const dir = tempDir('nbd-tls');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    join(dir, 'server-key.pem'),
    '-out',
    join(dir, 'server-cert.pem'),
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    `subjectAltName=DNS:${name},IP:127.0.0.1`,
  ]);
  copyFileSync(join(dir, 'server-cert.pem'), join(dir, 'ca-cert.pem'));
  return {
    dir,
    cert: readFileSync(join(dir, 'server-cert.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server-key.pem'), 'utf8'),
  };
}

/**
 * A certificate for `name` issued by a throw-away CA (as on a host with a CA-signed certificate):
 * `cert` is the leaf, `ca` the issuer; laid out for nbdkit (server-cert.pem = leaf).
 */
export async function caSignedCert(name: string): Promise<CertFiles & { ca: string }> {
  const dir = tempDir('nbd-ca');
  const f = (n: string): string => join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca-key.pem'),
    '-out',
    f('ca-cert.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=xcr test CA',
  ]);
  await run('openssl', [
    'req',
    ...ec,
    '-keyout',
    f('server-key.pem'),
    '-out',
    f('server.csr'),
    '-subj',
    `/CN=${name}`,
  ]);
  writeFileSync(f('ext.cnf'), `subjectAltName=DNS:${name}\nbasicConstraints=CA:FALSE\n`);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca-cert.pem'),
    '-CAkey',
    f('ca-key.pem'),
    '-CAcreateserial',
    '-out',
    f('server-cert.pem'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  ]);
  return {
    dir,
    cert: readFileSync(f('server-cert.pem'), 'utf8'),
    key: readFileSync(f('server-key.pem'), 'utf8'),
    ca: readFileSync(f('ca-cert.pem'), 'utf8'),
  };
}

/** A loopback TCP proxy whose live connections can be cut, to exercise reconnects. */
export async function cuttableProxy(targetPort: number): Promise<{
  port: number;
  readonly accepted: number;
  cutAll(): void;
  /** Cuts every connection once `bytes` more bytes have gone from the server to the client. */
  cutAfter(bytes: number): void;
  close(): Promise<void>;
}> {
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let cutBudget = Number.POSITIVE_INFINITY;
  const server: Server = createServer((inbound) => {
    accepted++;
    const outbound = connect({ host: '127.0.0.1', port: targetPort });
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const drop = (): void => {
      inbound.destroy();
      outbound.destroy();
      pairs.delete(pair);
    };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
    inbound.pipe(outbound);
    outbound.on('data', (chunk: Buffer) => {
      cutBudget -= chunk.length;
      if (cutBudget <= 0) {
        cutBudget = Number.POSITIVE_INFINITY;
        cutAll();
      } else inbound.write(chunk);
    });
  });
  const cutAll = (): void => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    cutAll,
    cutAfter(bytes: number) {
      cutBudget = bytes;
    },
    close: () =>
      new Promise<void>((resolve) => {
        cutAll();
        server.close(() => resolve());
      }),
  };
}
