import { randomBytes } from 'node:crypto';
import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../functions/nbd/client.js';
import {
  NbdConnectionError,
  NbdProtocolError,
  NbdReplyError,
  NbdTimeoutError,
} from '../../../functions/nbd/errors.js';
import { NbdPool } from '../../../functions/nbd/pool.js';
import {
  type CertFiles,
  caSignedCert,
  cuttableProxy,
  freePort,
  nbdkit,
  qemuNbd,
  type Spawned,
  selfSignedCert,
  tempDir,
} from './tools.js';

/** What nbdkit's pattern plugin serves: each 8-byte word holds its own offset, big-endian. */
function pattern(offset: number, length: number): Buffer {
  const first = offset - (offset % 8);
  const words = Buffer.alloc(Math.ceil((offset + length - first) / 8) * 8);
  for (let i = 0; i < words.length; i += 8) words.writeBigUInt64BE(BigInt(first + i), i);
  return words.subarray(offset - first, offset - first + length);
}

const DISK = 6 * 1024 * 1024 + 512 * 7; // not a multiple of the 2 MiB request size
const dir = tempDir('nbd-client');
const file = join(dir, 'disk.raw');
const data = randomBytes(DISK);
const servers: Spawned[] = [];
let qemu: Spawned;

beforeAll(async () => {
  writeFileSync(file, data);
  qemu = await qemuNbd(file, 'disk');
  servers.push(qemu);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe('NbdClient against qemu-nbd', () => {
  it('reads the whole export, equal to the file', async () => {
    const client = await NbdClient.connect({ host: '127.0.0.1', port: qemu.port, exportName: 'disk' });
    try {
      expect(client.size).toBe(DISK);
      expect(client.flags & 3).toBe(3); // HAS_FLAGS | READ_ONLY (qemu-nbd -r)
      expect((await client.read(0, DISK)).equals(data)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('serves many pipelined and unaligned reads on one connection', async () => {
    const client = await NbdClient.connect({
      host: '127.0.0.1',
      port: qemu.port,
      exportName: 'disk',
      maxInFlight: 4,
      maxRequestBytes: 64 * 1024,
    });
    try {
      const ranges = Array.from({ length: 60 }, (_, i) => {
        const offset = (i * 104_729) % (DISK - 300_000);
        return { offset, length: 1 + ((i * 7919) % 300_000) };
      });
      ranges.push({ offset: DISK - 1, length: 1 }, { offset: 511, length: 2 }, { offset: 0, length: 0 });
      const results = await Promise.all(ranges.map((r) => client.read(r.offset, r.length)));
      results.forEach((got, i) => {
        const r = ranges[i]!;
        expect(got.equals(data.subarray(r.offset, r.offset + r.length))).toBe(true);
      });
      expect(client.load).toBe(0);
      await expect(client.read(DISK - 512, 1024)).rejects.toThrow(RangeError);
    } finally {
      await client.close();
    }
  });

  it('refuses an unknown export without retrying forever', async () => {
    await expect(
      NbdClient.connect({ host: '127.0.0.1', port: qemu.port, exportName: 'nope' }),
    ).rejects.toThrow(/export refused/);
  });

  it('reports a refused connection as retryable', async () => {
    const port = await freePort();
    const err = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'disk' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NbdConnectionError);
  });
});

describe('NbdPool', () => {
  it('spreads reads over several connections and falls back to a working record', async () => {
    const dead = await freePort();
    const pool = await NbdPool.open(
      [
        { address: '127.0.0.1', port: dead, exportname: 'disk' },
        { address: '127.0.0.1', port: qemu.port, exportname: 'disk' },
      ],
      { insecure: true, connections: 3, maxRequestBytes: 256 * 1024 },
    );
    try {
      expect(pool.size).toBe(DISK);
      expect(pool.connections).toBe(3);
      expect((await pool.read(0, DISK)).equals(data)).toBe(true);
      expect((await pool.read(12_345, 777_777)).equals(data.subarray(12_345, 12_345 + 777_777))).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('reconnects and retries reads after its connections are cut', async () => {
    const proxy = await cuttableProxy(qemu.port);
    const pool = await NbdPool.open([{ address: '127.0.0.1', port: proxy.port, exportname: 'disk' }], {
      insecure: true,
      connections: 2,
      retryDelayMs: 20,
    });
    try {
      expect(proxy.accepted).toBe(2);
      proxy.cutAll();
      expect(
        (await pool.read(1024, 3 * 1024 * 1024)).equals(data.subarray(1024, 1024 + 3 * 1024 * 1024)),
      ).toBe(true);
      expect(proxy.accepted).toBeGreaterThan(2);
      // Cut while reads are in flight: every piece must still arrive exactly once and intact.
      const before = proxy.accepted;
      proxy.cutAfter(DISK / 2);
      expect((await pool.read(0, DISK)).equals(data)).toBe(true);
      expect(proxy.accepted).toBeGreaterThan(before);
      // The server gone for good: the read fails after the bounded attempts, not never.
      await proxy.close();
      const started = Date.now();
      await expect(pool.read(0, 4096)).rejects.toBeInstanceOf(NbdConnectionError);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await pool.close();
      await proxy.close();
    }
  });
});

describe('NbdClient against nbdkit', () => {
  it('reads the pattern plugin and the memory plugin', async () => {
    const pat = await nbdkit(['pattern', 'size=3M']);
    const mem = await nbdkit(['memory', 'size=1M']);
    servers.push(pat, mem);
    const client = await NbdClient.connect({ host: '127.0.0.1', port: pat.port, exportName: '' });
    expect(client.size).toBe(3 * 1024 * 1024);
    expect((await client.read(0, client.size)).equals(pattern(0, client.size))).toBe(true);
    expect((await client.read(1_000_003, 99_999)).equals(pattern(1_000_003, 99_999))).toBe(true);
    await client.close();
    const memClient = await NbdClient.connect({ host: '127.0.0.1', port: mem.port, exportName: '' });
    expect((await memClient.read(0, memClient.size)).equals(Buffer.alloc(1024 * 1024))).toBe(true);
    await memClient.close();
  });

  it('retries a failing read until the server recovers, and gives up after the bounded attempts', async () => {
    const trigger = join(dir, 'fail-reads');
    writeFileSync(trigger, '');
    const faulty = await nbdkit([
      '--filter=error',
      'pattern',
      'size=1M',
      'error-pread=EIO',
      'error-pread-rate=100%',
      `error-pread-file=${trigger}`,
    ]);
    servers.push(faulty);
    const pool = await NbdPool.open([{ address: '127.0.0.1', port: faulty.port, exportname: '' }], {
      insecure: true,
      connections: 2,
      attempts: 2,
      retryDelayMs: 10,
    });
    const err = await pool.read(0, 4096).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdReplyError);
    expect((err as NbdReplyError).errno).toBe(5);
    await pool.close();

    const patient = await NbdPool.open([{ address: '127.0.0.1', port: faulty.port, exportname: '' }], {
      insecure: true,
      connections: 2,
      attempts: 6,
      retryDelayMs: 40,
    });
    const reading = patient.read(65_536, 131_072);
    setTimeout(() => unlinkSync(trigger), 60);
    expect((await reading).equals(pattern(65_536, 131_072))).toBe(true);
    await patient.close();
  });

  it('times out a slow read', async () => {
    const slow = await nbdkit(['--filter=delay', 'pattern', 'size=1M', 'delay-read=3']);
    servers.push(slow);
    const pool = await NbdPool.open([{ address: '127.0.0.1', port: slow.port, exportname: '' }], {
      insecure: true,
      connections: 1,
      attempts: 2,
      retryDelayMs: 10,
      timeoutMs: 300,
    });
    const started = Date.now();
    const err = await pool.read(0, 512).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdTimeoutError);
    expect(Date.now() - started).toBeLessThan(2_500);
    await pool.close();
  });
});

describe('NbdClient with TLS (nbdkit --tls=require)', () => {
  let certs: CertFiles;
  let other: CertFiles;
  let secure: Spawned;

  beforeAll(async () => {
    [certs, other] = await Promise.all([selfSignedCert('nbd.test'), selfSignedCert('nbd.test')]);
    secure = await nbdkit(['--tls=require', `--tls-certificates=${certs.dir}`, 'pattern', 'size=2M']);
    servers.push(secure);
  });

  afterAll(() => {
    for (const c of [certs, other]) rmSync(c.dir, { recursive: true, force: true });
  });

  it('accepts the pinned certificate and reads through TLS', async () => {
    const client = await NbdClient.connect({
      host: '127.0.0.1',
      port: secure.port,
      exportName: '',
      tls: { cert: certs.cert, subject: 'nbd.test' },
    });
    expect((await client.read(0, client.size)).equals(pattern(0, client.size))).toBe(true);
    await client.close();
  });

  it('accepts an IP subject present in the certificate', async () => {
    const client = await NbdClient.connect({
      host: '127.0.0.1',
      port: secure.port,
      exportName: '',
      tls: { cert: certs.cert, subject: '127.0.0.1' },
    });
    expect((await client.read(4096, 512)).equals(pattern(4096, 512))).toBe(true);
    await client.close();
  });

  it('refuses another certificate, even one with the same name', async () => {
    const err = await NbdClient.connect({
      host: '127.0.0.1',
      port: secure.port,
      exportName: '',
      tls: { cert: other.cert, subject: 'nbd.test' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdProtocolError);
    expect(String(err)).toMatch(/TLS verification failed/);
  });

  it('refuses the right certificate under the wrong name', async () => {
    const err = await NbdClient.connect({
      host: '127.0.0.1',
      port: secure.port,
      exportName: '',
      tls: { cert: certs.cert, subject: 'other.test' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdProtocolError);
  });

  it('pins a CA-issued host certificate (the leaf alone is trusted), and still accepts its CA', async () => {
    const issued = await caSignedCert('host.test');
    const server = await nbdkit(['--tls=require', `--tls-certificates=${issued.dir}`, 'pattern', 'size=1M']);
    servers.push(server);
    try {
      for (const cert of [issued.cert, issued.ca]) {
        const client = await NbdClient.connect({
          host: '127.0.0.1',
          port: server.port,
          exportName: '',
          tls: { cert, subject: 'host.test' },
        });
        expect((await client.read(8192, 4096)).equals(pattern(8192, 4096))).toBe(true);
        await client.close();
      }
      const err = await NbdClient.connect({
        host: '127.0.0.1',
        port: server.port,
        exportName: '',
        tls: { cert: certs.cert, subject: 'host.test' },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NbdProtocolError);
    } finally {
      rmSync(issued.dir, { recursive: true, force: true });
    }
  });

  it('opens a pool with TLS from get_nbd_info-like records, and never downgrades silently', async () => {
    const record = {
      address: '127.0.0.1',
      port: secure.port,
      exportname: '',
      cert: certs.cert,
      subject: 'nbd.test',
    };
    const pool = await NbdPool.open([record], { connections: 2 });
    expect((await pool.read(0, pool.size)).equals(pattern(0, pool.size))).toBe(true);
    await pool.close();
    // A record without a certificate is refused unless the caller says the network is insecure_nbd.
    await expect(NbdPool.open([{ ...record, cert: undefined }], { connections: 1 })).rejects.toThrow(
      /insecure/,
    );
  });

  it('fails cleanly when TLS is required but not requested', async () => {
    await expect(NbdClient.connect({ host: '127.0.0.1', port: secure.port, exportName: '' })).rejects.toThrow(
      /export refused/,
    );
  });
});
