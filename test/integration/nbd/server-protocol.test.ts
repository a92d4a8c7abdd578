/** Byte-level checks of the xapi-nbd behaviours the simulator server reproduces (docs/xapi.md, NBD). */

import { rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NbdServerHandle, startNbdServer } from '../../../sim/nbd/server.js';
import { type CertFiles, selfSignedCert } from './tools.js';

const SIZE = 64 * 1024;
const disk = Buffer.alloc(SIZE, 0xab);
const resolveExport = (name: string) =>
  name === 'disk' ? { size: SIZE, read: (o: number, l: number) => disk.subarray(o, o + l) } : undefined;

const ERR = { unsup: 0x80000001, policy: 0x80000002, invalid: 0x80000003, tlsReqd: 0x80000005 };

/** A scripted client: writes raw bytes, reads exact counts, notices the close. */
class Raw {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }
  static open(port: number): Promise<Raw> {
    return new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(new Raw(s)));
    });
  }
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`closed with ${this.buf.length}/${n} bytes`);
      await new Promise<void>((r) => {
        this.waiter = r;
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  async waitClosed(): Promise<boolean> {
    const deadline = Date.now() + 2_000;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.closed && this.buf.length === 0;
  }
  write(b: Buffer): void {
    this.socket.write(b);
  }
  /** Reads the greeting, sends the client flags; returns the handshake flags. */
  async greet(clientFlags = 1): Promise<number> {
    const g = await this.read(18);
    expect(g.subarray(0, 16).toString('latin1')).toBe('NBDMAGICIHAVEOPT');
    this.write(u32(clientFlags));
    return g.readUInt16BE(16);
  }
  option(code: number, data = Buffer.alloc(0)): void {
    this.write(Buffer.concat([Buffer.from('IHAVEOPT', 'latin1'), u32(code), u32(data.length), data]));
  }
  async optionReply(): Promise<{ option: number; type: number }> {
    const r = await this.read(20);
    expect(r.readBigUInt64BE(0)).toBe(0x3e889045565a9n);
    const length = r.readUInt32BE(16);
    if (length > 0) await this.read(length);
    return { option: r.readUInt32BE(8), type: r.readUInt32BE(12) };
  }
  request(type: number, handle: number, offset: number, length: number, payload = Buffer.alloc(0)): void {
    const r = Buffer.alloc(28);
    r.writeUInt32BE(0x25609513, 0);
    r.writeUInt16BE(type, 6);
    r.writeUInt32BE(handle, 12);
    r.writeBigUInt64BE(BigInt(offset), 16);
    r.writeUInt32BE(length, 24);
    this.write(Buffer.concat([r, payload]));
  }
  async reply(): Promise<{ error: number; handle: number }> {
    const r = await this.read(16);
    expect(r.readUInt32BE(0)).toBe(0x67446698);
    return { error: r.readUInt32BE(4), handle: r.readUInt32BE(12) };
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

let certs: CertFiles;
let plain: NbdServerHandle;
let forced: NbdServerHandle;
const opened: Raw[] = [];
async function open(server: NbdServerHandle): Promise<Raw> {
  const raw = await Raw.open(server.port);
  opened.push(raw);
  return raw;
}

beforeAll(async () => {
  certs = await selfSignedCert('sim.test');
  plain = await startNbdServer({ host: '127.0.0.1', mode: 'no-tls', resolveExport });
  forced = await startNbdServer({
    host: '127.0.0.1',
    mode: 'forced-tls',
    tls: { cert: certs.cert, key: certs.key },
    resolveExport,
  });
});

afterAll(async () => {
  for (const r of opened) r.socket.destroy();
  await Promise.all([plain.close(), forced.close()]);
  rmSync(certs.dir, { recursive: true, force: true });
});

describe('sim NBD server: option haggling', () => {
  it('offers fixed newstyle only (no NO_ZEROES) and answers options like xapi-nbd', async () => {
    const c = await open(plain);
    expect(await c.greet()).toBe(1);
    c.option(3); // LIST
    expect(await c.optionReply()).toEqual({ option: 3, type: ERR.policy });
    for (const code of [6, 7, 8, 10]) {
      c.option(code, Buffer.alloc(6)); // INFO, GO, STRUCTURED_REPLY, SET_META_CONTEXT
      expect(await c.optionReply()).toEqual({ option: code, type: ERR.unsup });
    }
    c.option(5); // STARTTLS in no-TLS mode
    expect(await c.optionReply()).toEqual({ option: 5, type: ERR.policy });
    c.option(2); // ABORT
    expect(await c.optionReply()).toEqual({ option: 2, type: 1 });
    expect(await c.waitClosed()).toBe(true);
  });

  it('closes on client flags it does not know (NO_ZEROES was never offered)', async () => {
    const c = await open(plain);
    await c.greet(3);
    expect(await c.waitClosed()).toBe(true);
  });

  it('in forced-TLS mode answers ERR_TLS_REQD before STARTTLS and drops a clear-text EXPORT_NAME', async () => {
    const c = await open(forced);
    await c.greet();
    for (const code of [3, 6, 7]) {
      c.option(code);
      expect(await c.optionReply()).toEqual({ option: code, type: ERR.tlsReqd });
    }
    c.option(1, Buffer.from('disk'));
    expect(await c.waitClosed()).toBe(true);
  });

  it('after STARTTLS restarts haggling inside TLS: STARTTLS again is ERR_INVALID, then EXPORT_NAME works', async () => {
    const c = await open(forced);
    await c.greet();
    c.option(5);
    expect(await c.optionReply()).toEqual({ option: 5, type: 1 });
    const secure = tlsConnect({ socket: c.socket, ca: certs.cert, servername: 'sim.test' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const t = new Raw(secure);
    opened.push(t);
    t.option(5);
    expect(await t.optionReply()).toEqual({ option: 5, type: ERR.invalid });
    t.option(3);
    expect(await t.optionReply()).toEqual({ option: 3, type: ERR.policy });
    t.option(1, Buffer.from('disk'));
    expect(Number((await t.read(134)).readBigUInt64BE(0))).toBe(SIZE);
    t.request(0, 1, 0, 512);
    expect(await t.reply()).toEqual({ error: 0, handle: 1 });
    expect((await t.read(512)).equals(disk.subarray(0, 512))).toBe(true);
  });

  it('closes the connection on an unknown export', async () => {
    const c = await open(plain);
    await c.greet();
    c.option(1, Buffer.from('missing'));
    expect(await c.waitClosed()).toBe(true);
  });
});

describe('sim NBD server: connection limit', () => {
  it('closes connections beyond maxConnections on accept and accepts again once one ends', async () => {
    const limited = await startNbdServer({
      host: '127.0.0.1',
      mode: 'no-tls',
      resolveExport,
      maxConnections: 2,
    });
    try {
      const a = await open(limited);
      const b = await open(limited);
      await Promise.all([a.greet(), b.greet()]);
      const c = await open(limited);
      expect(await c.waitClosed()).toBe(true);
      a.socket.destroy();
      await a.waitClosed();
      await new Promise((r) => setTimeout(r, 50));
      const d = await open(limited);
      expect(await d.greet()).toBe(1);
    } finally {
      await limited.close();
    }
  });
});

describe('sim NBD server: transmission', () => {
  async function exported(): Promise<Raw> {
    const c = await open(plain);
    await c.greet();
    c.option(1, Buffer.from('disk'));
    const info = await c.read(10 + 124);
    expect(Number(info.readBigUInt64BE(0))).toBe(SIZE);
    expect(info.readUInt16BE(8)).toBe(3); // HAS_FLAGS | READ_ONLY
    expect(info.subarray(10).equals(Buffer.alloc(124))).toBe(true);
    return c;
  }

  it('answers reads, refuses unaligned reads, writes and unknown commands, and keeps going', async () => {
    const c = await exported();
    c.request(0, 7, 512, 1024);
    expect(await c.reply()).toEqual({ error: 0, handle: 7 });
    expect((await c.read(1024)).equals(disk.subarray(512, 1536))).toBe(true);
    c.request(0, 8, 100, 512);
    expect(await c.reply()).toEqual({ error: 22, handle: 8 });
    c.request(0, 9, 0, 100);
    expect(await c.reply()).toEqual({ error: 22, handle: 9 });
    c.request(0, 10, SIZE - 512, 1024); // past the end
    expect(await c.reply()).toEqual({ error: 22, handle: 10 });
    c.request(1, 11, 0, 512, Buffer.alloc(512, 1)); // WRITE: payload consumed, EPERM
    expect(await c.reply()).toEqual({ error: 1, handle: 11 });
    c.request(3, 12, 0, 0); // FLUSH
    expect(await c.reply()).toEqual({ error: 22, handle: 12 });
    c.request(0, 13, 0, 512);
    expect(await c.reply()).toEqual({ error: 0, handle: 13 });
    expect((await c.read(512)).equals(disk.subarray(0, 512))).toBe(true);
    c.request(2, 14, 0, 0); // DISC
    expect(await c.waitClosed()).toBe(true);
  });

  it('drops the connection after the reply header when the export fails to read (as xapi-nbd)', async () => {
    const failing = await startNbdServer({
      host: '127.0.0.1',
      mode: 'no-tls',
      resolveExport: () => ({
        size: 4096,
        read: () => {
          throw new Error('backing store failed');
        },
      }),
    });
    try {
      const c = await open(failing);
      await c.greet();
      c.option(1, Buffer.from('any'));
      await c.read(134);
      c.request(0, 1, 0, 512);
      expect(await c.reply()).toEqual({ error: 0, handle: 1 });
      expect(await c.waitClosed()).toBe(true);
    } finally {
      await failing.close();
    }
  });
});
