import { Transform, type TransformCallback } from 'node:stream';

/**
 * Counts the bytes passing through and, when a rate is given, paces them to at most that many
 * bytes per second (the delay propagates upstream as back-pressure, so the source slows too).
 */
export class MeteredStream extends Transform {
  bytes = 0;
  private readonly started = Date.now();

  constructor(
    private readonly bytesPerSecond: number | undefined,
    private readonly onBytes?: (total: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    if (!this.bytesPerSecond) {
      done(null, chunk);
      return;
    }
    const due = this.started + (this.bytes / this.bytesPerSecond) * 1000;
    const wait = due - Date.now();
    if (wait <= 0) done(null, chunk);
    else setTimeout(() => done(null, chunk), wait);
  }
}
