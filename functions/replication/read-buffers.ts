import { onWritten } from '../xapi/index.js';

/**
 * A bounded set of equal-sized buffers that the cbt path reads its chunks into, reused once the
 * upload no longer references them. A fresh 4 MiB buffer per chunk cost more CPU than the rest of
 * the path: V8 counts the dead ones as external memory and ran full collections to free them
 * (measured: the garbage collector was half of xcr's CPU time in cbt mode).
 *
 * A buffer comes back only through its `release` (called once the transport has written it); one that
 * never comes back is simply garbage. When none is free a fresh one is made, so a slow release only
 * costs an allocation, never a wait; at most `keep` are held for reuse, so the memory stays
 * `keep × size` plus the buffers in flight (bounded by the readers' read-ahead and the upload's
 * back-pressure) whatever the disk size.
 */
export class ReadBuffers {
  readonly #free: Buffer[] = [];
  /** Buffers made (the first ones, and one per take that found none free). */
  made = 0;
  /** Takes served by a released buffer. */
  reused = 0;

  constructor(
    readonly size: number,
    readonly keep: number,
  ) {
    if (!Number.isSafeInteger(size) || size <= 0 || !Number.isSafeInteger(keep) || keep < 0)
      throw new RangeError('ReadBuffers: size must be positive, keep non-negative');
  }

  /**
   * `length` bytes (at most `size`) of a buffer nobody references any more, and the one call that
   * hands it back. `view` is a new object each time (the transport recognises a chunk by identity).
   */
  take(length: number): { view: Buffer; release: () => void } {
    if (length > this.size)
      throw new RangeError(`ReadBuffers: ${length} bytes asked, buffers hold ${this.size}`);
    let whole = this.#free.pop();
    if (whole) this.reused++;
    else {
      whole = Buffer.allocUnsafeSlow(this.size);
      this.made++;
    }
    const view = whole.subarray(0, length);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (this.#free.length < this.keep) this.#free.push(whole);
    };
    return { view, release };
  }
}

/**
 * A chunk source for an upload body (`encodeChunked`'s `read`): each chunk is read into a buffer of
 * `buffers`, which goes back to them once the upload's socket has written it (`onWritten`), never
 * earlier: until then the socket may still send from it. The buffer of a failed read is left to the
 * garbage collector (failures are rare, and then nothing needs to be known about its pieces).
 */
export function reusingReader(
  buffers: ReadBuffers,
  readInto: (offset: number, target: Buffer) => Promise<void>,
): (offset: number, length: number) => Promise<Buffer> {
  return async (offset, length) => {
    const { view, release } = buffers.take(length);
    await readInto(offset, view);
    onWritten(view, release);
    return view;
  };
}
