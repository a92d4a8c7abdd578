import { isIP, type Socket } from 'node:net';
import * as tls from 'node:tls';
import { isCertificateError } from '../retry/index.js';
import { ByteQueue } from './byte-queue.js';
import { CopyingSink, type DirectReads } from './direct-reads.js';
import { NbdConnectionError, NbdError, NbdProtocolError } from './errors.js';
import {
  CLIENT_FLAG_FIXED_NEWSTYLE,
  EXPORT_NAME_PADDING,
  encodeOption,
  HANDSHAKE_FLAG_FIXED_NEWSTYLE,
  IHAVEOPT,
  NBDMAGIC,
  OPT_EXPORT_NAME,
  OPT_REPLY_MAGIC,
  OPT_STARTTLS,
  optReplyName,
  REP_ACK,
} from './protocol.js';

export interface NbdTlsOptions {
  /** PEM certificate(s) of the server, trusted as the only CA (`VDI.get_nbd_info` `cert`). */
  cert: string;
  /** Name the certificate must carry (`VDI.get_nbd_info` `subject`); sent as SNI when it is a DNS name. */
  subject: string;
}

export interface HandshakeResult {
  stream: Socket;
  size: number;
  flags: number;
  /** Bytes received after the handshake (none from a conforming server, kept for safety). */
  leftover: Buffer;
}

const MAX_OPTION_REPLY = 64 * 1024;

/** Reads exact byte counts from a stream during the handshake, then hands the stream over. */
class HandshakeReader {
  private readonly queue = new ByteQueue();
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly stream: Socket,
    private readonly describe: string,
    /** The socket reads through `onread` (plain TCP): its bytes come from here, not 'data'. */
    private readonly direct?: DirectReads,
  ) {
    if (direct) for (const chunk of direct.use(new CopyingSink(this.onData))) this.onData(chunk);
    else stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  read(n: number): Promise<Buffer> {
    if (this.queue.length >= n) return Promise.resolve(this.queue.take(n));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  /** Stops listening and returns whatever was received but not consumed. */
  detach(): Buffer {
    if (this.direct) this.direct.use(undefined);
    else this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    return this.queue.drain();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.queue.push(chunk);
    const w = this.waiter;
    if (w && this.queue.length >= w.n) {
      this.waiter = undefined;
      w.resolve(this.queue.take(w.n));
    }
  };

  private readonly onEnd = (): void => {
    this.fail(new NbdConnectionError(`${this.describe}: connection closed during the handshake`));
  };

  private readonly onError = (err: Error): void => {
    this.fail(new NbdConnectionError(`${this.describe}: ${err.message}`, { cause: err }));
  };

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }
}

/**
 * Fixed-newstyle handshake as xapi-nbd accepts it: optional STARTTLS, then NBD_OPT_EXPORT_NAME.
 * No other option is ever sent (xapi-nbd answers INFO/GO/STRUCTURED_REPLY with ERR_UNSUP and, in
 * forced-TLS mode, everything before STARTTLS with ERR_TLS_REQD).
 */
export async function handshake(
  socket: Socket,
  exportName: string,
  tlsOptions: NbdTlsOptions | undefined,
  describe: string,
  /** How `socket` delivers its bytes when it was opened with `onread` (never with TLS). */
  direct?: DirectReads,
): Promise<HandshakeResult> {
  if (direct && tlsOptions) throw new Error('NBD handshake: TLS needs a socket read through data events');
  let stream: Socket = socket;
  let reader = new HandshakeReader(stream, describe, direct);
  try {
    const greeting = await reader.read(18);
    if (greeting.readBigUInt64BE(0) !== NBDMAGIC)
      throw new NbdProtocolError(`${describe}: not an NBD server`);
    if (greeting.readBigUInt64BE(8) !== IHAVEOPT) {
      throw new NbdProtocolError(`${describe}: server does not speak newstyle NBD`);
    }
    if ((greeting.readUInt16BE(16) & HANDSHAKE_FLAG_FIXED_NEWSTYLE) === 0) {
      throw new NbdProtocolError(`${describe}: server does not speak fixed-newstyle NBD`);
    }
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(CLIENT_FLAG_FIXED_NEWSTYLE);
    stream.write(clientFlags);

    if (tlsOptions) {
      stream.write(encodeOption(OPT_STARTTLS));
      const reply = await reader.read(20);
      if (reply.readBigUInt64BE(0) !== OPT_REPLY_MAGIC || reply.readUInt32BE(8) !== OPT_STARTTLS) {
        throw new NbdProtocolError(`${describe}: malformed reply to STARTTLS`);
      }
      const type = reply.readUInt32BE(12);
      const length = reply.readUInt32BE(16);
      if (length > MAX_OPTION_REPLY) throw new NbdProtocolError(`${describe}: oversized option reply`);
      if (length > 0) await reader.read(length);
      if (type !== REP_ACK) {
        throw new NbdProtocolError(`${describe}: server refused STARTTLS (${optReplyName(type)})`);
      }
      if (reader.detach().length > 0) throw new NbdProtocolError(`${describe}: data after STARTTLS reply`);
      stream = await startTls(socket, tlsOptions, describe);
      reader = new HandshakeReader(stream, describe);
    }

    stream.write(encodeOption(OPT_EXPORT_NAME, Buffer.from(exportName, 'utf8')));
    let info: Buffer;
    try {
      info = await reader.read(10 + EXPORT_NAME_PADDING);
    } catch (err) {
      // xapi-nbd closes the connection when the session, the VDI or the VBD plug is refused.
      throw new NbdError(
        `${describe}: server closed the connection after EXPORT_NAME (export refused)`,
        false,
        {
          cause: err,
        },
      );
    }
    const size = Number(info.readBigUInt64BE(0));
    const flags = info.readUInt16BE(8);
    return { stream, size, flags, leftover: reader.detach() };
  } catch (err) {
    reader.detach();
    stream.destroy();
    socket.destroy();
    throw err;
  }
}

function startTls(socket: Socket, opts: NbdTlsOptions, describe: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // An IP subject cannot be SNI (RFC 6066); Node then checks it against the IP SANs via `host`.
    const naming = isIP(opts.subject) ? { host: opts.subject } : { servername: opts.subject };
    const secure = tls.connect({
      socket,
      ca: opts.cert,
      // The pinned certificate is the trust anchor even when it is a CA-issued leaf, not self-signed.
      allowPartialTrustChain: true,
      ...naming,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    });
    const onError = (err: Error & { code?: string }): void => {
      secure.destroy();
      const code = err.code ?? '';
      if (isCertificateError(code)) {
        reject(
          new NbdProtocolError(`${describe}: TLS verification failed (${code}): ${err.message}`, {
            cause: err,
          }),
        );
      } else {
        reject(new NbdConnectionError(`${describe}: TLS handshake failed: ${err.message}`, { cause: err }));
      }
    };
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      secure.off('error', onError);
      resolve(secure);
    });
  });
}
