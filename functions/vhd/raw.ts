import { type ReadOptions, readVhdStream, type VhdSource } from './reader.js';
import { SECTOR_SIZE, type VhdStreamInfo } from './types.js';

/** Runs of set bits (sectors present in this file) in a block bitmap, as [firstSector, count]. */
export function bitmapRuns(bitmap: Uint8Array, sectors: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let runStart = -1;
  for (let s = 0; s < sectors; s++) {
    const byte = bitmap[s >> 3]!;
    const set = byte === 0xff || (byte !== 0 && (byte & (0x80 >> (s & 7))) !== 0);
    if (set && runStart < 0) runStart = s;
    if (!set && runStart >= 0) {
      runs.push([runStart, s - runStart]);
      runStart = -1;
    }
  }
  if (runStart >= 0) runs.push([runStart, sectors - runStart]);
  return runs;
}

/** Receives the bytes to write at a virtual offset; `data` is valid only until the returned promise settles. */
export type RawWriter = (offset: number, data: Buffer) => void | Promise<void>;

/**
 * Applies a VHD stream onto a raw image the way XAPI's import does: only the sectors whose bitmap
 * bit is set, of the blocks present in the BAT, are written at their virtual offsets (clipped to
 * the virtual size). Applying a differencing VHD onto its parent's content yields the child's.
 */
export async function applyVhdToRaw(
  source: VhdSource,
  target: Buffer | RawWriter,
  options: ReadOptions = {},
): Promise<VhdStreamInfo> {
  const write: RawWriter = Buffer.isBuffer(target)
    ? (offset, data) => void data.copy(target, offset)
    : target;
  const { info, blocks } = await readVhdStream(source, { reuseBlockBuffer: true, ...options });
  const sectors = info.blockSize / SECTOR_SIZE;
  for await (const block of blocks()) {
    const base = block.index * info.blockSize;
    for (const [first, count] of bitmapRuns(block.bitmap, sectors)) {
      const offset = base + first * SECTOR_SIZE;
      const end = Math.min(offset + count * SECTOR_SIZE, info.virtualSize);
      if (end > offset) await write(offset, block.data.subarray(first * SECTOR_SIZE, end - base));
    }
  }
  return info;
}
