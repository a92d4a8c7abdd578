import type { ParseLimits } from './layout.js';

export interface ReadOptions extends ParseLimits {
  /**
   * Reuse one buffer for every block's data (a block is valid only until the next is requested).
   * Several times faster for consumers that copy or write each block before asking for the next.
   */
  reuseBlockBuffer?: boolean;
}

import { VhdStreamParser } from './parser.js';
import type { VhdBlock, VhdStreamInfo } from './types.js';

export interface VhdStreamReader {
  info: VhdStreamInfo;
  /**
   * Yields the allocated blocks in file order, pulling from the source only as the consumer asks.
   * A block's buffers may share memory with a source chunk: use them before asking for the next one.
   * Ends after the trailing footer was checked and the source ended; throws VhdFormatError otherwise.
   */
  blocks(): AsyncGenerator<VhdBlock>;
}

/** Where VHD bytes come from: a Node stream, an async generator, or (in tests) an array of chunks. */
export type VhdSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | NodeJS.ReadableStream;

function iterate(source: VhdSource): AsyncIterator<unknown> | Iterator<unknown> {
  if (Symbol.asyncIterator in source) return (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  return (source as Iterable<unknown>)[Symbol.iterator]();
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError('VHD source must yield binary chunks (Buffer/Uint8Array), not strings');
}

/**
 * Parses a forward-only VHD stream. Resolves once the footer copy, header and BAT are read (the
 * total length is known before any block is consumed).
 */
export async function readVhdStream(source: VhdSource, options: ReadOptions = {}): Promise<VhdStreamReader> {
  const iterator = iterate(source);
  const parser = new VhdStreamParser({ ...options, collectBlocks: true });
  let chunk: Uint8Array = new Uint8Array(0);
  let at = 0;
  let sourceDone = false;

  const close = async (): Promise<void> => {
    if (!sourceDone) {
      sourceDone = true;
      await iterator.return?.();
    }
  };

  /** Pulls the next chunk; false once the source is exhausted. */
  const pull = async (): Promise<boolean> => {
    if (sourceDone) return false;
    const r = await iterator.next();
    if (r.done) {
      sourceDone = true;
      return false;
    }
    chunk = toBytes(r.value);
    at = 0;
    return true;
  };

  try {
    while (!parser.info) {
      if (at >= chunk.length && !(await pull())) parser.end();
      at = parser.feed(chunk, at);
    }
  } catch (err) {
    await close();
    throw err;
  }
  const info = parser.info;
  let started = false;

  async function* blocks(): AsyncGenerator<VhdBlock> {
    if (started) throw new Error('blocks() can be iterated only once');
    started = true;
    try {
      for (;;) {
        if (at >= chunk.length) {
          if (!(await pull())) {
            parser.end();
            return;
          }
        }
        at = parser.feed(chunk, at);
        const block = parser.takeBlock();
        if (block) yield block;
      }
    } finally {
      await close();
    }
  }

  return { info, blocks };
}
