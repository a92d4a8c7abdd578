/** A FIFO of received chunks that hands out exact byte counts without re-copying everything. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // bytes already consumed from chunks[0]
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Removes and returns exactly `n` bytes (caller checks `length` first). */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`take(${n}) with only ${this.total} bytes queued`);
    const first = this.chunks[0];
    if (first && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const count = Math.min(chunk.length - this.head, n - filled);
      chunk.copy(out, filled, this.head, this.head + count);
      filled += count;
      this.advance(count);
    }
    return out;
  }

  /** Removes `n` bytes, copying them into `target` at `at`. */
  takeInto(n: number, target: Buffer, at: number): void {
    if (n > this.total) throw new RangeError(`take(${n}) with only ${this.total} bytes queued`);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const count = Math.min(chunk.length - this.head, n - filled);
      chunk.copy(target, at + filled, this.head, this.head + count);
      filled += count;
      this.advance(count);
    }
  }

  /** Copies what is queued into memory of its own (the chunks' memory is about to be reused). */
  own(): void {
    if (this.total === 0) return;
    const copy = Buffer.allocUnsafe(this.total);
    this.takeInto(this.total, copy, 0);
    this.chunks = [copy];
    this.total = copy.length;
  }

  /** Removes and returns everything queued. */
  drain(): Buffer {
    return this.take(this.total);
  }

  private advance(n: number): void {
    this.head += n;
    this.total -= n;
    const first = this.chunks[0];
    if (first && this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
