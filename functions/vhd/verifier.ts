import { Transform, type TransformCallback } from 'node:stream';
import type { ParseLimits } from './layout.js';
import { VhdStreamParser } from './parser.js';
import { FOOTER_SIZE, type VhdStreamInfo } from './types.js';

/**
 * Pass-through verifier: forwards the incoming chunks unchanged (no copy of block data) while
 * checking them. Nothing is pushed until footer, header and BAT are parsed, so `info` (and the
 * exact total length) resolves before a consumer sees a byte. A chunk is forwarded only after it
 * was checked, and the trailing footer is held back until the input ended cleanly, so a consumer
 * that counts bytes up to `totalLength` never sees a corrupt stream complete.
 */
export class VhdVerifier extends Transform {
  readonly info: Promise<VhdStreamInfo>;
  readonly stats = { bytes: 0, blocks: 0 };
  private readonly parser: VhdStreamParser;
  private resolveInfo!: (info: VhdStreamInfo) => void;
  private rejectInfo!: (err: Error) => void;
  private infoSettled = false;
  /** Chunks received before the BAT was parsed. */
  private early: Uint8Array[] = [];
  /** The trailing footer's bytes, released at the end. */
  private held: Uint8Array[] = [];
  private footerAt = Number.POSITIVE_INFINITY;

  constructor(limits: ParseLimits = {}) {
    super();
    this.parser = new VhdStreamParser({ ...limits, collectBlocks: false });
    this.info = new Promise<VhdStreamInfo>((resolve, reject) => {
      this.resolveInfo = resolve;
      this.rejectInfo = reject;
    });
    // Callers may only await info after an error was already raised on the stream.
    this.info.catch(() => {});
  }

  override _transform(chunk: unknown, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!(chunk instanceof Uint8Array)) {
      cb(this.fail(new TypeError('VhdVerifier accepts binary chunks only')));
      return;
    }
    const startPos = this.parser.pos;
    try {
      let i = 0;
      while (i < chunk.length) i = this.parser.feed(chunk, i);
    } catch (err) {
      cb(this.fail(err as Error));
      return;
    }
    this.stats.bytes = this.parser.pos;
    this.stats.blocks = this.parser.blocksSeen;
    if (!this.infoSettled) {
      const info = this.parser.info;
      if (!info) {
        this.early.push(chunk);
        cb();
        return;
      }
      this.infoSettled = true;
      this.footerAt = info.totalLength - FOOTER_SIZE;
      this.resolveInfo(info);
      let pos = 0;
      for (const c of this.early) {
        this.forward(c, pos);
        pos += c.length;
      }
      this.early = [];
    }
    this.forward(chunk, startPos);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.parser.end();
    } catch (err) {
      cb(this.fail(err as Error));
      return;
    }
    for (const c of this.held) this.push(c);
    this.held = [];
    cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.infoSettled) {
      this.infoSettled = true;
      this.rejectInfo(err ?? new Error('VhdVerifier closed before the BAT was read'));
    }
    cb(err);
  }

  /** Pushes a chunk that starts at stream offset `pos`, holding back the trailing footer's bytes. */
  private forward(chunk: Uint8Array, pos: number): void {
    const cut = Math.max(0, Math.min(chunk.length, this.footerAt - pos));
    if (cut === chunk.length) {
      this.push(chunk);
      return;
    }
    if (cut > 0) this.push(chunk.subarray(0, cut));
    this.held.push(chunk.subarray(cut));
  }

  private fail(err: Error): Error {
    if (!this.infoSettled) {
      this.infoSettled = true;
      this.rejectInfo(err);
    }
    this.early = [];
    this.held = [];
    return err;
  }
}
