import { connect as netConnect, type Socket } from 'node:net';
import { ByteQueue } from './byte-queue.js';
import { DirectReads, type ReadSink } from './direct-reads.js';
import { NbdConnectionError, NbdError, NbdProtocolError, NbdReplyError, NbdTimeoutError } from './errors.js';
import { handshake, type NbdTlsOptions } from './handshake.js';
import {
  CMD_DISC,
  CMD_READ,
  decodeSimpleReply,
  encodeRequest,
  SECTOR,
  SIMPLE_REPLY_BYTES,
} from './protocol.js';

export type { NbdTlsOptions } from './handshake.js';

export interface NbdConnectOptions {
  host: string;
  port: number;
  /** For xapi-nbd: `/<vdi-uuid>?session_id=<ref>` — never logged or put into errors. */
  exportName: string;
  tls?: NbdTlsOptions;
  /** Budget for connect + handshake, and for each request from send to reply. Default 30 s. */
  timeoutMs?: number;
  /** Requests in flight on the connection at once. Default 16. */
  maxInFlight?: number;
  /** Largest single READ request; bigger reads are split. Default 2 MiB. */
  maxRequestBytes?: number;
}

/** What a caller needs from one NBD export, whether one connection or a pool. */
export interface NbdReader {
  readonly size: number;
  /** Reads `length` bytes at `offset` (unaligned ranges are widened to 512-byte sectors internally). */
  read(offset: number, length: number): Promise<Buffer>;
  /** Reads `target.length` bytes at `offset` straight into `target` (no intermediate copy). */
  readInto(offset: number, target: Buffer): Promise<void>;
  close(): Promise<void>;
}

interface Pending {
  handle: number;
  /** Where the reply's data goes; its length is the request length. */
  target: Buffer;
  filled: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

interface Queued {
  offset: number;
  target: Buffer;
  resolve: () => void;
  reject: (err: Error) => void;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_IN_FLIGHT = 16;
const DEFAULT_MAX_REQUEST = 2 * 1024 * 1024;

/** Bytes a plain-TCP read may take while a reply header is awaited (then copied where they belong). */
const HEADER_READ_BYTES = 64 * 1024;

/**
 * A single NBD connection in transmission phase: pipelined READs matched by handle. Without TLS the
 * socket reads through `onread` into buffers this client picks: a reply's data goes from the kernel
 * straight into the caller's buffer (see direct-reads.ts).
 */
export class NbdClient implements NbdReader, ReadSink {
  readonly size: number;
  readonly flags: number;
  private readonly queue = new ByteQueue();
  private readonly inFlight = new Map<number, Pending>();
  private readonly waiting: Queued[] = [];
  private current: Pending | undefined;
  private nextHandle = 1;
  private failure: Error | undefined;
  private closing = false;
  private readonly closed: Promise<void>;
  private readonly idleWaiters: (() => void)[] = [];
  /** Plain TCP: where header bytes are read; the view of a target the current read fills. */
  private scratch: Buffer | undefined;
  private directView: Buffer | undefined;

  private constructor(
    private readonly stream: Socket,
    private readonly raw: Socket,
    size: number,
    flags: number,
    leftover: Buffer,
    private readonly describe: string,
    private readonly timeoutMs: number,
    private readonly maxInFlight: number,
    readonly maxRequestBytes: number,
    direct: DirectReads | undefined,
  ) {
    this.size = size;
    this.flags = flags;
    this.closed = new Promise((resolve) => stream.once('close', () => resolve()));
    if (!direct) stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('error', (err) =>
      this.fail(new NbdConnectionError(`${describe}: ${err.message}`, { cause: err })),
    );
    stream.on('close', () => this.fail(new NbdConnectionError(`${describe}: connection closed`)));
    raw.on('error', () => {}); // surfaced through `stream` (the TLS socket) when TLS is on
    if (leftover.length > 0) this.onData(leftover);
    if (direct) {
      this.scratch = Buffer.allocUnsafe(HEADER_READ_BYTES);
      for (const chunk of direct.use(this)) this.onData(chunk);
    }
  }

  static async connect(opts: NbdConnectOptions): Promise<NbdClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST;
    if (maxRequestBytes % SECTOR !== 0 || maxRequestBytes <= 0) {
      throw new RangeError('maxRequestBytes must be a positive multiple of 512');
    }
    // The export name carries the XAPI session: describe the connection without its query.
    const describe = `nbd ${opts.host}:${opts.port}${opts.exportName.split('?')[0]}`;
    const direct = opts.tls ? undefined : new DirectReads();
    const raw = netConnect({
      host: opts.host,
      port: opts.port,
      noDelay: true,
      ...(direct ? { onread: direct.onread } : {}),
    });
    const timer = setTimeout(
      () => raw.destroy(new NbdTimeoutError(`${describe}: no handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      await new Promise<void>((resolve, reject) => {
        raw.once('connect', resolve);
        raw.once('error', reject);
      }).catch((err: Error) => {
        if (err instanceof NbdError) throw err;
        throw new NbdConnectionError(`${describe}: ${err.message}`, { cause: err });
      });
      const hs = await handshake(raw, opts.exportName, opts.tls, describe, direct).catch((err: unknown) => {
        // A timeout destroys the socket: report the timeout, not the resulting close.
        const cause = raw.errored;
        throw cause instanceof NbdTimeoutError ? cause : err;
      });
      return new NbdClient(
        hs.stream,
        raw,
        hs.size,
        hs.flags,
        hs.leftover,
        describe,
        timeoutMs,
        opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
        maxRequestBytes,
        direct,
      );
    } catch (err) {
      raw.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Requests sent and not yet answered, plus those queued behind the in-flight limit. */
  get load(): number {
    return this.inFlight.size + this.waiting.length;
  }

  /** Set once the connection is unusable (closed, failed, timed out). */
  get broken(): Error | undefined {
    return this.failure;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return readVia(this, offset, length);
  }

  async readInto(offset: number, target: Buffer): Promise<void> {
    if (!isAligned(offset, target.length, this.size)) return readIntoVia(this, offset, target);
    checkRange(offset, target.length, this.size);
    const step = this.maxRequestBytes;
    const pieces: Promise<void>[] = [];
    for (let at = 0; at < target.length; at += step) {
      pieces.push(this.request(offset + at, target.subarray(at, Math.min(at + step, target.length))));
    }
    await allPieces(pieces);
  }

  /** Waits for in-flight reads, then sends NBD_CMD_DISC and closes the socket. */
  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    if (this.load > 0) await new Promise<void>((done) => this.idleWaiters.push(done));
    if (!this.failure && !this.stream.destroyed) {
      this.stream.end(encodeRequest(CMD_DISC, this.nextHandle++, 0, 0));
      const timer = setTimeout(() => this.stream.destroy(), 2_000);
      await this.closed;
      clearTimeout(timer);
    } else {
      this.stream.destroy();
    }
    this.raw.destroy();
  }

  private request(offset: number, target: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new NbdError(`${this.describe}: client closed`, false));
    return new Promise((resolve, reject) => {
      const item = { offset, target, resolve, reject };
      if (this.inFlight.size < this.maxInFlight) this.send(item);
      else this.waiting.push(item);
    });
  }

  private send(item: Queued): void {
    const handle = this.nextHandle++;
    const pending: Pending = {
      handle,
      target: item.target,
      filled: 0,
      resolve: item.resolve,
      reject: item.reject,
      timer: undefined,
    };
    pending.timer = setTimeout(() => {
      const what = `read of ${item.target.length} bytes at ${item.offset}`;
      this.fail(
        new NbdTimeoutError(`${this.describe}: ${what} got no reply within ${this.timeoutMs} ms`),
        pending,
      );
    }, this.timeoutMs);
    this.inFlight.set(handle, pending);
    this.stream.write(encodeRequest(CMD_READ, handle, item.offset, item.target.length));
  }

  /** ReadSink: the rest of the current reply's target while its data arrives, else the scratch. */
  buffer(): Buffer {
    const p = this.current;
    if (p && this.queue.length === 0 && !this.failure) {
      this.directView = p.target.subarray(p.filled);
      return this.directView;
    }
    this.directView = undefined;
    return this.scratch!;
  }

  /** ReadSink: `n` bytes were read into `buf` (a target view, the scratch, or the handshake's buffer). */
  filled(n: number, buf: Buffer): void {
    if (this.failure) return;
    const p = this.current;
    if (buf === this.directView && p) {
      this.directView = undefined;
      p.filled += n;
      if (p.filled === p.target.length) this.finish(p);
      return;
    }
    this.onData(buf.subarray(0, n));
    // The scratch is read into again next time: what stays queued (part of a header) must own its bytes.
    this.queue.own();
  }

  private onData(chunk: Buffer): void {
    if (this.failure) return;
    this.queue.push(chunk);
    try {
      for (;;) {
        if (!this.current) {
          if (this.queue.length < SIMPLE_REPLY_BYTES) return;
          const reply = decodeSimpleReply(this.queue.take(SIMPLE_REPLY_BYTES));
          const pending = this.inFlight.get(reply.handle);
          if (!pending)
            throw new NbdProtocolError(`${this.describe}: reply for unknown handle ${reply.handle}`);
          if (reply.error !== 0) {
            this.settle(pending);
            pending.reject(new NbdReplyError(reply.error, `${this.describe}: read`));
            continue;
          }
          this.current = pending;
        }
        // Copy data as it arrives, straight into the caller's buffer.
        const pending = this.current;
        const need = pending.target.length - pending.filled;
        const count = Math.min(need, this.queue.length);
        if (count > 0) {
          this.queue.takeInto(count, pending.target, pending.filled);
          pending.filled += count;
        }
        if (pending.filled < pending.target.length) return;
        this.finish(pending);
      }
    } catch (err) {
      this.fail(err instanceof NbdError ? err : new NbdProtocolError(`${this.describe}: ${String(err)}`));
    }
  }

  private finish(pending: Pending): void {
    this.current = undefined;
    this.settle(pending);
    pending.resolve();
  }

  /** Removes an answered request and lets the next queued one go out. */
  private settle(pending: Pending): void {
    clearTimeout(pending.timer);
    this.inFlight.delete(pending.handle);
    const next = this.waiting.shift();
    if (next) this.send(next);
    else this.notifyIdle();
  }

  /** The connection is unusable: fail everything outstanding; `culprit` (a timed-out request) gets `err`. */
  private fail(err: Error, culprit?: Pending): void {
    if (this.failure) return;
    this.failure = err;
    const others = culprit
      ? new NbdConnectionError(`${this.describe}: connection abandoned after a timeout`, { cause: err })
      : err;
    for (const pending of this.inFlight.values()) {
      clearTimeout(pending.timer);
      pending.reject(pending === culprit ? err : others);
    }
    this.inFlight.clear();
    for (const item of this.waiting.splice(0)) item.reject(others);
    this.current = undefined;
    this.stream.destroy();
    this.raw.destroy();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.load > 0) return;
    for (const done of this.idleWaiters.splice(0)) done();
  }
}

/** Waits for every piece (none may still write into the caller's buffer), then throws the first failure. */
export async function allPieces(pieces: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(pieces);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** An aligned range can be requested as is: sector-aligned, or ending exactly at the export's end. */
export function isAligned(offset: number, length: number, size: number): boolean {
  return offset % SECTOR === 0 && (length % SECTOR === 0 || offset + length === size);
}

/** `read` on top of `readInto`: widens to sectors, reads into one buffer, returns the asked part. */
export async function readVia(reader: NbdReader, offset: number, length: number): Promise<Buffer> {
  checkRange(offset, length, reader.size);
  if (length === 0) return Buffer.alloc(0);
  const start = offset - (offset % SECTOR);
  const end = Math.min(roundUp(offset + length), reader.size);
  const whole = Buffer.allocUnsafe(end - start);
  await reader.readInto(start, whole);
  return start === offset && end - start === length
    ? whole
    : whole.subarray(offset - start, offset - start + length);
}

async function readIntoVia(reader: NbdReader, offset: number, target: Buffer): Promise<void> {
  (await readVia(reader, offset, target.length)).copy(target);
}

export function checkRange(offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid read range ${offset}+${length}`);
  }
  if (offset + length > size) throw new RangeError(`read ${offset}+${length} beyond the export size ${size}`);
}

export function roundUp(n: number): number {
  return Math.ceil(n / SECTOR) * SECTOR;
}
