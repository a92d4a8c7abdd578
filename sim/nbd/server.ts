/**
 * An NBD server that behaves like xapi-nbd (docs/xapi.md, "CBT and NBD"): fixed newstyle only,
 * NBD_OPT_EXPORT_NAME as the only way in, optional forced TLS, read-only simple replies.
 * Written independently of functions/nbd (the client) so each checks the other.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import { ExactReader } from './reader.js';

export interface NbdExport {
  size: number;
  read(offset: number, length: number): Buffer | Promise<Buffer>;
}

export interface NbdServerOptions {
  host: string;
  port?: number;
  /** PEM certificate and key, required for `forced-tls`. */
  tls?: { cert: string; key: string };
  mode: 'forced-tls' | 'no-tls';
  /** Called with the EXPORT_NAME payload (for xapi: `/<vdi-uuid>?session_id=...`); undefined → close. */
  resolveExport(name: string): NbdExport | undefined | Promise<NbdExport | undefined>;
  /** Connections served at once; more are closed on accept, as xapi-nbd does (its limit: 16). */
  maxConnections?: number;
  /** Paces each connection's read replies (one pacer per connection). */
  pacer?: () => { account(n: number): Promise<void> };
  /** Asked at a connection's first read request: after how many data bytes the connection drops
   *  (a fault; undefined = never). */
  cutAfter?: () => number | undefined;
}

export interface NbdServerHandle {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Option codes received, in order, over all connections. */
  readonly options: readonly number[];
  close(): Promise<void>;
}

const NBDMAGIC = Buffer.from('NBDMAGIC', 'latin1');
const IHAVEOPT = Buffer.from('IHAVEOPT', 'latin1');
const OPT_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const REPLY_MAGIC = 0x67446698;

const OPT = { exportName: 1, abort: 2, list: 3, starttls: 5 } as const;
const REP = {
  ack: 1,
  errUnsup: 0x80000001,
  errPolicy: 0x80000002,
  errInvalid: 0x80000003,
  errTlsReqd: 0x80000005,
} as const;
const CMD = { read: 0, write: 1, disc: 2 } as const;
const ERRNO = { eperm: 1, einval: 22 } as const;
const FLAG_HAS_FLAGS = 1;
const FLAG_READ_ONLY = 2;
const MAX_OPTION_LENGTH = 64 * 1024;
const MAX_REQUEST_LENGTH = 32 * 1024 * 1024;

export async function startNbdServer(opts: NbdServerOptions): Promise<NbdServerHandle> {
  if (opts.mode === 'forced-tls' && !opts.tls) throw new Error('forced-tls mode needs tls.cert and tls.key');
  const secureContext = opts.tls
    ? createSecureContext({ cert: opts.tls.cert, key: opts.tls.key })
    : undefined;
  const sockets = new Set<Socket>();
  const options: number[] = [];
  let connections = 0;
  const limit = opts.maxConnections ?? 16;
  const server: Server = createServer({ noDelay: true }, (socket) => {
    connections++;
    socket.on('error', () => {});
    if (sockets.size >= limit) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serve(socket, opts, secureContext, options).catch(() => {
      // Any protocol violation or refusal ends the connection, as xapi-nbd does.
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('NBD server has no TCP address');
  return {
    port: address.port,
    get connections() {
      return connections;
    },
    options,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

class Refused extends Error {}

async function serve(
  socket: Socket,
  opts: NbdServerOptions,
  secureContext: ReturnType<typeof createSecureContext> | undefined,
  seen: number[],
): Promise<void> {
  const forced = opts.mode === 'forced-tls';
  let stream: Socket = socket;
  let reader = new ExactReader(stream);
  let tlsActive = false;

  const greeting = Buffer.alloc(18);
  NBDMAGIC.copy(greeting, 0);
  IHAVEOPT.copy(greeting, 8);
  greeting.writeUInt16BE(1, 16); // FIXED_NEWSTYLE only: no NO_ZEROES
  stream.write(greeting);
  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  if ((clientFlags & ~1) !== 0) throw new Refused('unknown client flags');
  if (forced && (clientFlags & 1) === 0) throw new Refused('TLS needs fixed newstyle');

  for (;;) {
    const header = await reader.read(16);
    if (!header.subarray(0, 8).equals(IHAVEOPT)) throw new Refused('bad option magic');
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > MAX_OPTION_LENGTH) throw new Refused('option too long');
    const data = length > 0 ? await reader.read(length) : Buffer.alloc(0);
    seen.push(option);

    if (option === OPT.exportName) {
      if (forced && !tlsActive) throw new Refused('EXPORT_NAME in clear text');
      const exp = await opts.resolveExport(data.toString('utf8'));
      if (!exp) throw new Refused('unknown export');
      const reply = Buffer.alloc(8 + 2 + 124);
      reply.writeBigUInt64BE(BigInt(exp.size), 0);
      reply.writeUInt16BE(FLAG_HAS_FLAGS | FLAG_READ_ONLY, 8);
      stream.write(reply);
      return transmission(stream, reader, exp, opts.pacer?.(), opts.cutAfter);
    }
    if (option === OPT.abort) {
      stream.end(optionReply(option, REP.ack));
      return;
    }
    if (option === OPT.starttls) {
      if (!forced) await writeOptionReply(stream, option, REP.errPolicy);
      else if (tlsActive || length !== 0) await writeOptionReply(stream, option, REP.errInvalid);
      else {
        await writeOptionReply(stream, option, REP.ack);
        if (reader.detach().length > 0) throw new Refused('data sent before the TLS handshake');
        stream = await acceptTls(socket, secureContext!);
        reader = new ExactReader(stream);
        tlsActive = true;
      }
      continue;
    }
    if (forced && !tlsActive) await writeOptionReply(stream, option, REP.errTlsReqd);
    else if (option === OPT.list) await writeOptionReply(stream, option, REP.errPolicy);
    else await writeOptionReply(stream, option, REP.errUnsup);
  }
}

async function transmission(
  stream: Socket,
  reader: ExactReader,
  exp: NbdExport,
  pacer?: { account(n: number): Promise<void> },
  cutAfter?: () => number | undefined,
): Promise<void> {
  let cut: number | undefined;
  let asked = false;
  let sent = 0;
  for (;;) {
    const req = await reader.read(28);
    if (req.readUInt32BE(0) !== REQUEST_MAGIC) throw new Refused('bad request magic');
    const type = req.readUInt16BE(6);
    const handle = req.subarray(8, 16);
    const offset = Number(req.readBigUInt64BE(16));
    const length = req.readUInt32BE(24);
    if (type === CMD.disc) {
      stream.end();
      return;
    }
    if (type === CMD.write) {
      if (length > MAX_REQUEST_LENGTH) throw new Refused('write too large');
      if (length > 0) await reader.read(length);
      await send(stream, simpleReply(ERRNO.eperm, handle));
      continue;
    }
    if (type !== CMD.read) {
      await send(stream, simpleReply(ERRNO.einval, handle));
      continue;
    }
    if (
      offset % 512 !== 0 ||
      length % 512 !== 0 ||
      length > MAX_REQUEST_LENGTH ||
      offset + length > exp.size
    ) {
      await send(stream, simpleReply(ERRNO.einval, handle));
      continue;
    }
    // Like xapi-nbd: the reply header goes out first; a failing read then drops the connection.
    // Header and data leave in one writev (cork), not as a 16-byte segment of their own that woke
    // the client for a header alone; a synchronous export read costs no extra turn of the loop.
    stream.cork();
    stream.write(simpleReply(0, handle));
    let data: Buffer;
    try {
      const read = exp.read(offset, length);
      data = read instanceof Promise ? await read : read;
    } catch (err) {
      stream.uncork();
      throw err;
    }
    if (data.length !== length) {
      stream.uncork();
      throw new Refused('export returned a short read');
    }
    if (!asked) {
      asked = true;
      cut = cutAfter?.();
    }
    if (cut !== undefined && sent + length > cut) {
      // the connection drops inside this reply, as when the host or its storage fails mid-read
      stream.write(data.subarray(0, Math.max(0, cut - sent)));
      stream.uncork();
      throw new Refused('connection cut (injected)');
    }
    sent += length;
    const flushed = send(stream, data);
    stream.uncork();
    await flushed;
    if (pacer) await pacer.account(length);
  }
}

function optionReply(option: number, type: number): Buffer {
  const out = Buffer.alloc(20);
  out.writeBigUInt64BE(OPT_REPLY_MAGIC, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(type, 12);
  out.writeUInt32BE(0, 16);
  return out;
}

function writeOptionReply(stream: Socket, option: number, type: number): Promise<void> {
  return send(stream, optionReply(option, type));
}

function simpleReply(error: number, handle: Buffer): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt32BE(REPLY_MAGIC, 0);
  out.writeUInt32BE(error, 4);
  handle.copy(out, 8);
  return out;
}

/** Writes with back-pressure: waits for 'drain' when the socket buffer is full. */
function send(stream: Socket, data: Buffer): Promise<void> {
  if (stream.write(data)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Refused('closed while writing'));
    stream.once('close', onClose);
    stream.once('drain', () => {
      stream.off('close', onClose);
      resolve();
    });
  });
}

function acceptTls(socket: Socket, secureContext: ReturnType<typeof createSecureContext>): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const secure = new TLSSocket(socket, { isServer: true, secureContext });
    secure.once('secure', () => {
      secure.off('error', reject);
      secure.on('error', () => {});
      resolve(secure);
    });
    secure.once('error', reject);
  });
}
