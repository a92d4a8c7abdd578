/** A slow consumer keeps memory bounded: nothing pulls far ahead of what has been consumed. */

import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createVhdWriter, readVhdStream, VhdVerifier } from '../../../functions/vhd/index.js';
import { MiB, pattern } from './helpers.js';

const BLOCK = 2 * MiB;
const CHUNK = 64 * 1024;
const BLOCKS = [0, 1, 2, 5, 6, 7, 9, 10, 11, 12, 13, 15];

/** A VHD produced lazily by the writer from one shared block, re-cut into 64 KiB chunks; counts what was pulled. */
function source(counter: { pulled: number; reads: number }) {
  const data = pattern(BLOCK, 5);
  const w = createVhdWriter({
    diskType: 'dynamic',
    virtualSize: 16 * BLOCK,
    blocks: BLOCKS,
    readBlock: async () => {
      counter.reads++;
      return data;
    },
  });
  async function* gen(): AsyncGenerator<Buffer> {
    for await (const piece of w.stream) {
      const buf = piece as Buffer;
      for (let at = 0; at < buf.length; at += CHUNK) {
        const c = buf.subarray(at, at + CHUNK);
        counter.pulled += c.length;
        yield c;
      }
    }
  }
  return { gen, length: w.length };
}

describe('VHD back-pressure', () => {
  it('reader pulls at most one chunk past the block it yields; writer reads blocks on demand', async () => {
    const counter = { pulled: 0, reads: 0 };
    const { gen } = source(counter);
    const { info, blocks } = await readVhdStream(gen());
    let maxAhead = 0;
    let yielded = 0;
    for await (const b of blocks()) {
      yielded++;
      const blockEnd = info.bat[b.index]! * 512 + 512 + BLOCK;
      maxAhead = Math.max(maxAhead, counter.pulled - blockEnd);
      expect(counter.reads).toBeLessThanOrEqual(yielded + 1);
      await sleep(2);
    }
    expect(yielded).toBe(BLOCKS.length);
    expect(maxAhead).toBeLessThanOrEqual(CHUNK);
  });

  it('verifier forwards with back-pressure: the source stays within a few chunks of a slow sink', async () => {
    const counter = { pulled: 0, reads: 0 };
    const { gen, length } = source(counter);
    let written = 0;
    let maxAhead = 0;
    const verifier = new VhdVerifier();
    await pipeline(
      gen,
      verifier,
      new Writable({
        highWaterMark: CHUNK,
        write(c: Buffer, _e, cb) {
          written += c.length;
          maxAhead = Math.max(maxAhead, counter.pulled - written);
          setTimeout(cb, 0);
        },
      }),
    );
    expect(written).toBe(length);
    expect(verifier.stats).toEqual({ bytes: length, blocks: BLOCKS.length });
    expect(maxAhead).toBeLessThanOrEqual(4 * CHUNK);
  });
});
