import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Frees a relay's spent socket buffers at a pace set by the bytes relayed, not by V8's heuristics.
 *
 * Every socket read allocates a fresh 64 KiB buffer outside the JS heap (Node's read path); once the
 * chunk has been written to the other socket it is garbage, but V8 only counts it as external memory
 * and starts collecting after tens of MiB of it have piled up (measured: 35–40 MiB of dead buffers
 * between collections, the bulk of the relay's peak RSS; the buffers actually in flight, bounded by
 * the streams' highWaterMarks, stay under 5 MiB). Those buffers die young, so a minor GC (a
 * scavenge of the young generation, about a millisecond) frees them; one every `everyBytes` bounds
 * the dead buffers to about that many bytes whatever the disk size.
 */
export class ReclaimPacer {
  #next: number;
  collections = 0;

  constructor(
    private readonly everyBytes: number,
    private readonly collect: (() => void) | null = minorGc() ?? null,
  ) {
    if (!Number.isSafeInteger(everyBytes) || everyBytes <= 0)
      throw new RangeError('ReclaimPacer: everyBytes must be a positive integer');
    this.#next = everyBytes;
  }

  /** Call with the running total of bytes relayed. */
  onBytes(total: number): void {
    if (total < this.#next || !this.collect) return;
    this.#next = total + this.everyBytes;
    this.collections++;
    this.collect();
  }
}

/** Bytes relayed between two minor GCs (4 MiB: the dead buffers stay a few MiB, ~1 ms per GC). */
export const RECLAIM_EVERY_BYTES = 4 * 2 ** 20;

let cached: (() => void) | null | undefined;

/**
 * V8's minor GC, or undefined where it cannot be had. Node only exposes `gc` behind `--expose-gc`,
 * which Lambda's NODE_OPTIONS does not accept on every runtime; the flag is switched on for the one
 * lookup in a fresh context (the function stays valid) and off again, so the program's own global
 * scope never gains a `gc`.
 */
export function minorGc(): (() => void) | undefined {
  if (cached === undefined) {
    cached = null;
    try {
      let gc = (globalThis as { gc?: unknown }).gc;
      if (typeof gc !== 'function') {
        setFlagsFromString('--expose-gc');
        try {
          gc = runInNewContext('gc');
        } finally {
          setFlagsFromString('--no-expose-gc');
        }
      }
      if (typeof gc === 'function') {
        const fn = gc as (o?: { type: 'minor' }) => void;
        cached = () => fn({ type: 'minor' });
      }
    } catch {
      cached = null;
    }
  }
  return cached ?? undefined;
}
