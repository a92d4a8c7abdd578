import { backoffMs, sleep } from '../retry/index.js';
import { allPieces, checkRange, isAligned, NbdClient, type NbdReader, readVia } from './client.js';
import { NbdError, NbdProtocolError } from './errors.js';

/** One record of `VDI.get_nbd_info` (field names as XAPI returns them). */
export interface NbdExportInfo {
  address: string;
  port: number;
  exportname: string;
  cert?: string;
  subject?: string;
}

export interface NbdPoolOptions {
  /**
   * Plain NBD, for pools whose NBD network has purpose `insecure_nbd`. XAPI returns the host
   * certificate in every record whatever the purpose, so this is never guessed: without it, every
   * connection does STARTTLS and verifies the record's `cert`/`subject`.
   */
  insecure?: boolean;
  /** Connections to open (spread over the records). Default 4. */
  connections?: number;
  /** Per request, and per connect + handshake. Default 30 s. */
  timeoutMs?: number;
  /** Attempts per read piece (first try included). Default 3. */
  attempts?: number;
  /** Delay before the first retry, doubled each time. Default 100 ms. */
  retryDelayMs?: number;
  maxInFlight?: number;
  maxRequestBytes?: number;
}

interface Slot {
  client: NbdClient | undefined;
  connecting: Promise<NbdClient> | undefined;
  /** Index of the record this slot connects to first; moves on when that record fails. */
  infoIndex: number;
}

const DEFAULT_MAX_REQUEST = 2 * 1024 * 1024;

/**
 * Several NBD connections to one disk. Reads are split into pieces of at most `maxRequestBytes`,
 * spread round-robin over the connections, and each piece is retried (bounded, with backoff) on
 * retryable failures; a connection that failed or timed out is replaced by a new one on next use,
 * trying the other records of `get_nbd_info` if its own address no longer answers.
 */
export class NbdPool implements NbdReader {
  private next = 0;
  private closing = false;
  private exportSize = 0;

  private constructor(
    private readonly infos: readonly NbdExportInfo[],
    private readonly slots: Slot[],
    private readonly opts: Required<Omit<NbdPoolOptions, 'maxInFlight'>> & { maxInFlight?: number },
  ) {}

  static async open(infos: readonly NbdExportInfo[], options: NbdPoolOptions = {}): Promise<NbdPool> {
    if (infos.length === 0) throw new NbdProtocolError('no NBD export records (is a network NBD-enabled?)');
    if (!options.insecure) {
      const bare = infos.find((i) => !i.cert);
      if (bare)
        throw new NbdProtocolError(
          `NBD record for ${bare.address} has no certificate (insecure_nbd needs insecure: true)`,
        );
    }
    const opts = {
      insecure: options.insecure ?? false,
      connections: options.connections ?? 4,
      timeoutMs: options.timeoutMs ?? 30_000,
      attempts: options.attempts ?? 3,
      retryDelayMs: options.retryDelayMs ?? 100,
      maxRequestBytes: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST,
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    };
    if (opts.connections < 1 || opts.attempts < 1)
      throw new RangeError('connections and attempts must be >= 1');
    const slots: Slot[] = Array.from({ length: opts.connections }, (_, i) => ({
      client: undefined,
      connecting: undefined,
      infoIndex: i % infos.length,
    }));
    const pool = new NbdPool(infos, slots, opts);
    const results = await Promise.allSettled(slots.map((slot) => pool.connectSlot(slot)));
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const first = opened[0];
    if (!first) {
      throw (results[0] as PromiseRejectedResult).reason;
    }
    if (opened.some((c) => c.size !== first.size)) {
      await Promise.allSettled(opened.map((c) => c.close()));
      throw new NbdProtocolError('NBD connections to the same disk report different sizes');
    }
    // Slots that failed to open stay empty and reconnect on first use.
    pool.exportSize = first.size;
    return pool;
  }

  get size(): number {
    return this.exportSize;
  }

  get connections(): number {
    return this.slots.filter((s) => s.client && !s.client.broken).length;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return readVia(this, offset, length);
  }

  async readInto(offset: number, target: Buffer): Promise<void> {
    if (!isAligned(offset, target.length, this.size)) {
      (await readVia(this, offset, target.length)).copy(target);
      return;
    }
    checkRange(offset, target.length, this.size);
    if (this.closing) throw new NbdError('NBD pool closed', false);
    const step = this.opts.maxRequestBytes;
    const pieces: Promise<void>[] = [];
    for (let at = 0; at < target.length; at += step) {
      pieces.push(this.readPiece(offset + at, target.subarray(at, Math.min(at + step, target.length))));
    }
    await allPieces(pieces);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled(
      this.slots.map(async (slot) => (await slot.connecting?.catch(() => undefined))?.close()),
    );
    await Promise.allSettled(this.slots.map((slot) => slot.client?.close()));
  }

  private async readPiece(offset: number, target: Buffer): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const slot = this.slots[this.next++ % this.slots.length]!;
      try {
        const client = await this.clientOf(slot);
        return await client.readInto(offset, target);
      } catch (err) {
        const retryable = err instanceof NbdError && err.retryable && !this.closing;
        if (!retryable || attempt >= this.opts.attempts) throw err;
        await sleep(backoffMs(attempt, { baseMs: this.opts.retryDelayMs }));
      }
    }
  }

  private clientOf(slot: Slot): Promise<NbdClient> {
    if (slot.client && !slot.client.broken) return Promise.resolve(slot.client);
    if (this.closing) return Promise.reject(new NbdError('NBD pool closed', false));
    return this.connectSlot(slot);
  }

  private connectSlot(slot: Slot): Promise<NbdClient> {
    slot.connecting ??= (async () => {
      slot.client = undefined;
      let lastError: unknown;
      for (let i = 0; i < this.infos.length; i++) {
        const index = (slot.infoIndex + i) % this.infos.length;
        const info = this.infos[index]!;
        try {
          const client = await NbdClient.connect({
            host: info.address,
            port: info.port,
            exportName: info.exportname,
            ...(this.opts.insecure
              ? {}
              : { tls: { cert: info.cert ?? '', subject: info.subject || info.address } }),
            timeoutMs: this.opts.timeoutMs,
            maxRequestBytes: this.opts.maxRequestBytes,
            ...(this.opts.maxInFlight === undefined ? {} : { maxInFlight: this.opts.maxInFlight }),
          });
          if (this.exportSize !== 0 && client.size !== this.exportSize) {
            await client.close();
            throw new NbdProtocolError(`NBD export size changed from ${this.size} to ${client.size}`);
          }
          slot.infoIndex = index;
          slot.client = client;
          return client;
        } catch (err) {
          lastError = err;
          if (err instanceof NbdError && !err.retryable) break;
        }
      }
      throw lastError;
    })().finally(() => {
      slot.connecting = undefined;
    });
    return slot.connecting;
  }
}
