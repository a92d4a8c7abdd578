import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../functions/nbd/client.js';
import { NbdPool } from '../../../functions/nbd/pool.js';
import { type NbdServerHandle, startNbdServer } from '../../../sim/nbd/server.js';
import { type CertFiles, run, selfSignedCert, tempDir } from './tools.js';

const SIZE = 3 * 1024 * 1024;
const disk = randomBytes(SIZE);
// xapi-nbd export names look like this; libnbd URIs need the '?' percent-encoded.
const EXPORT = '/7f0c2d4e-0000-4000-8000-000000000001?session_id=OpaqueRef:sim';
const URI_PATH = `/${EXPORT.replace('?', '%3F')}`;

const resolveExport = (name: string) =>
  name === EXPORT
    ? { size: SIZE, read: (offset: number, length: number) => disk.subarray(offset, offset + length) }
    : undefined;

let certs: CertFiles;
let plain: NbdServerHandle;
let secure: NbdServerHandle;
const dir = tempDir('nbd-server');

beforeAll(async () => {
  certs = await selfSignedCert('sim-host.test');
  plain = await startNbdServer({ host: '127.0.0.1', mode: 'no-tls', resolveExport });
  secure = await startNbdServer({
    host: '127.0.0.1',
    mode: 'forced-tls',
    tls: { cert: certs.cert, key: certs.key },
    resolveExport,
  });
});

afterAll(async () => {
  await Promise.all([plain.close(), secure.close()]);
  rmSync(certs.dir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

interface NbdInfoJson {
  protocol: string;
  TLS: boolean;
  structured: boolean;
  exports: { 'export-name': string; 'export-size': number; is_read_only: boolean; can_trim: boolean }[];
}

describe('sim NBD server, checked by libnbd (nbdinfo, nbdcopy)', () => {
  it('is described by nbdinfo as fixed newstyle, read-only, no structured replies', async () => {
    const { stdout } = await run('nbdinfo', ['--json', `nbd://127.0.0.1:${plain.port}${URI_PATH}`]);
    const info = JSON.parse(stdout) as NbdInfoJson;
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.TLS).toBe(false);
    expect(info.structured).toBe(false);
    expect(info.exports[0]).toMatchObject({ 'export-name': EXPORT, 'export-size': SIZE, is_read_only: true });
  });

  it('serves the export byte for byte to nbdcopy', async () => {
    const out = join(dir, 'copy.raw');
    await run('nbdcopy', [`nbd://127.0.0.1:${plain.port}${URI_PATH}`, out]);
    expect(readFileSync(out).equals(disk)).toBe(true);
  });

  it('speaks TLS to nbdinfo (nbds://, certificate verified by libnbd)', async () => {
    const uri = `nbds://127.0.0.1:${secure.port}${URI_PATH}?tls-certificates=${certs.dir}`;
    const { stdout } = await run('nbdinfo', ['--json', uri]);
    const info = JSON.parse(stdout) as NbdInfoJson;
    expect(info.TLS).toBe(true);
    expect(info.exports[0]?.['export-size']).toBe(SIZE);
    const out = join(dir, 'copy-tls.raw');
    await run('nbdcopy', [uri, out]);
    expect(readFileSync(out).equals(disk)).toBe(true);
  });

  it('is refused by libnbd when the client trusts another certificate', async () => {
    const other = await selfSignedCert('sim-host.test');
    try {
      const uri = `nbds://127.0.0.1:${secure.port}${URI_PATH}?tls-certificates=${other.dir}`;
      await expect(run('nbdinfo', [uri])).rejects.toThrow();
    } finally {
      rmSync(other.dir, { recursive: true, force: true });
    }
  });

  it('refuses a clear-text client in forced-TLS mode and an unknown export', async () => {
    await expect(run('nbdinfo', [`nbd://127.0.0.1:${secure.port}${URI_PATH}`])).rejects.toThrow();
    await expect(run('nbdinfo', [`nbd://127.0.0.1:${plain.port}/nope`])).rejects.toThrow();
  });
});

describe('sim NBD server with the xcr client', () => {
  it('sends only EXPORT_NAME in clear text, and STARTTLS then EXPORT_NAME with TLS', async () => {
    const before = { plain: plain.options.length, secure: secure.options.length };
    const a = await NbdClient.connect({ host: '127.0.0.1', port: plain.port, exportName: EXPORT });
    expect((await a.read(0, SIZE)).equals(disk)).toBe(true);
    await a.close();
    const b = await NbdClient.connect({
      host: '127.0.0.1',
      port: secure.port,
      exportName: EXPORT,
      tls: { cert: certs.cert, subject: 'sim-host.test' },
    });
    expect((await b.read(1536, 1_000_000)).equals(disk.subarray(1536, 1_001_536))).toBe(true);
    await b.close();
    expect(plain.options.slice(before.plain)).toEqual([1]);
    expect(secure.options.slice(before.secure)).toEqual([5, 1]);
  });

  it('serves a pool of connections, as get_nbd_info records', async () => {
    const before = plain.connections;
    const pool = await NbdPool.open([{ address: '127.0.0.1', port: plain.port, exportname: EXPORT }], {
      insecure: true,
      connections: 3,
      maxRequestBytes: 128 * 1024,
    });
    expect((await pool.read(100, SIZE - 200)).equals(disk.subarray(100, SIZE - 100))).toBe(true);
    // readInto fills a caller's buffer in place, aligned or not.
    const target = Buffer.alloc(300_000);
    await pool.readInto(1_048_576, target);
    expect(target.equals(disk.subarray(1_048_576, 1_348_576))).toBe(true);
    await pool.readInto(777, target);
    expect(target.equals(disk.subarray(777, 300_777))).toBe(true);
    await pool.close();
    expect(plain.connections - before).toBe(3);
  });

  it('recovers when the server drops connections on read errors, as xapi-nbd does', async () => {
    let failures = 0;
    const flaky = await startNbdServer({
      host: '127.0.0.1',
      mode: 'no-tls',
      resolveExport: () => ({
        size: SIZE,
        read: (offset: number, length: number) => {
          if (failures < 3 && offset === 1024 * 1024) {
            failures++;
            throw new Error('injected I/O error');
          }
          return disk.subarray(offset, offset + length);
        },
      }),
    });
    try {
      const pool = await NbdPool.open([{ address: '127.0.0.1', port: flaky.port, exportname: EXPORT }], {
        insecure: true,
        connections: 2,
        attempts: 5,
        retryDelayMs: 5,
        maxRequestBytes: 256 * 1024,
      });
      expect((await pool.read(0, SIZE)).equals(disk)).toBe(true);
      expect(failures).toBe(3);
      expect(flaky.connections).toBeGreaterThan(2);
      await pool.close();
    } finally {
      await flaky.close();
    }
  });

  it('reports the STARTTLS refusal of a no-TLS server', async () => {
    await expect(
      NbdClient.connect({
        host: '127.0.0.1',
        port: plain.port,
        exportName: EXPORT,
        tls: { cert: certs.cert, subject: 'sim-host.test' },
      }),
    ).rejects.toThrow(/refused STARTTLS \(ERR_POLICY\)/);
  });
});
