/** Exact reads and skips over a forward-only byte source, counting the absolute offset. */
import { Qcow2FormatError } from './types.js';

export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | NodeJS.ReadableStream;

export class ForwardReader {
  /** absolute offset of the next unread byte */
  pos = 0;
  private chunk: Uint8Array = new Uint8Array(0);
  private at = 0;
  private ended = false;
  private readonly it: AsyncIterator<unknown> | Iterator<unknown>;

  constructor(source: ByteSource) {
    this.it =
      Symbol.asyncIterator in source
        ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
        : (source as Iterable<unknown>)[Symbol.iterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.at >= this.chunk.length) {
      if (this.ended) return false;
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        return false;
      }
      if (!(r.value instanceof Uint8Array))
        throw new TypeError('qcow2 source must yield binary chunks (Buffer/Uint8Array), not strings');
      this.chunk = r.value;
      this.at = 0;
    }
    return true;
  }

  /** Exactly `n` bytes (a copy when they span chunks). */
  async read(n: number, what: string): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    let have = 0;
    while (have < n) {
      if (!(await this.fill()))
        throw new Qcow2FormatError('TRUNCATED', `the stream ended inside ${what}`, this.pos);
      const k = Math.min(n - have, this.chunk.length - this.at);
      parts.push(this.chunk.subarray(this.at, this.at + k));
      this.at += k;
      have += k;
      this.pos += k;
    }
    if (parts.length === 1) {
      const p = parts[0]!;
      return Buffer.from(p.buffer, p.byteOffset, p.length);
    }
    return Buffer.concat(parts, n);
  }

  /** Discards bytes up to absolute `offset`; `what` names the structure expected there. */
  async skipTo(offset: number, what: string): Promise<void> {
    if (offset < this.pos)
      throw new Qcow2FormatError(
        'NOT_STREAMABLE',
        `${what} at byte ${offset} comes before data already read (a streamed image needs every table before the data it describes)`,
        this.pos,
      );
    while (this.pos < offset) {
      if (!(await this.fill()))
        throw new Qcow2FormatError('TRUNCATED', `the stream ended before ${what}`, this.pos);
      const k = Math.min(offset - this.pos, this.chunk.length - this.at);
      this.at += k;
      this.pos += k;
    }
  }

  /** Reads and drops whatever is left. */
  async drain(): Promise<void> {
    while (await this.fill()) {
      this.pos += this.chunk.length - this.at;
      this.at = this.chunk.length;
    }
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.it.return?.();
    }
  }
}
