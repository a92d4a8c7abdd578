/** Byte ranges of a disk, and the CBT bitmap that XAPI's `VDI.list_changed_blocks` returns. */

export interface Extent {
  offset: number;
  length: number;
}

/** One CBT bit covers 64 KiB of the disk. */
export const CBT_BLOCK_SIZE = 64 * 1024;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes `VDI.list_changed_blocks` (base64; bit i = byte i/8, mask 0x80 >> i%8, MSB first) into
 * sorted, coalesced extents. With `virtualSize`, the last extent is clipped to the disk and a set bit
 * past its end is an error (it would mean a wrong bit order or a bitmap of another disk).
 */
export function decodeCbtBitmap(
  base64: string,
  opts: { virtualSize?: number; blockSize?: number } = {},
): Extent[] {
  const blockSize = opts.blockSize ?? CBT_BLOCK_SIZE;
  const text = base64.replace(/\s+/g, '');
  if (!BASE64.test(text) || text.length % 4 === 1) throw new Error('CBT bitmap is not valid base64');
  const bits = Buffer.from(text, 'base64');
  const limit = opts.virtualSize ?? Number.POSITIVE_INFINITY;
  const out: Extent[] = [];
  const push = (firstBlock: number, endBlock: number): void => {
    const offset = firstBlock * blockSize;
    if (offset >= limit) {
      throw new RangeError(`CBT bitmap marks block ${firstBlock} beyond the disk size ${limit}`);
    }
    out.push({ offset, length: Math.min(endBlock * blockSize, limit) - offset });
  };
  let runStart = -1;
  for (let i = 0; i < bits.length; i++) {
    const byte = bits[i]!;
    if (byte === 0x00 || byte === 0xff) {
      if (byte === 0x00 && runStart >= 0) {
        push(runStart, i * 8);
        runStart = -1;
      } else if (byte === 0xff && runStart < 0) runStart = i * 8;
      continue;
    }
    for (let b = 0; b < 8; b++) {
      const block = i * 8 + b;
      if (byte & (0x80 >> b)) {
        if (runStart < 0) runStart = block;
      } else if (runStart >= 0) {
        push(runStart, block);
        runStart = -1;
      }
    }
  }
  if (runStart >= 0) push(runStart, bits.length * 8);
  return out;
}

/** Sorts and merges overlapping or touching extents. */
export function coalesceExtents(extents: readonly Extent[]): Extent[] {
  const sorted = extents.filter((e) => e.length > 0).sort((a, b) => a.offset - b.offset);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && e.offset <= last.offset + last.length) {
      last.length = Math.max(last.length, e.offset + e.length - last.offset);
    } else out.push({ offset: e.offset, length: e.length });
  }
  return out;
}

/**
 * Widens extents outward to multiples of `granularity` (e.g. 2 MiB VHD blocks, 512-byte sectors),
 * clipped to `size`, then coalesces them.
 */
export function alignExtents(extents: readonly Extent[], granularity: number, size: number): Extent[] {
  return coalesceExtents(
    extents.map((e) => {
      const start = Math.floor(e.offset / granularity) * granularity;
      const end = Math.min(Math.ceil((e.offset + e.length) / granularity) * granularity, size);
      return { offset: start, length: end - start };
    }),
  );
}

export function totalLength(extents: readonly Extent[]): number {
  return extents.reduce((sum, e) => sum + e.length, 0);
}

/**
 * Cuts extents into consecutive batches of at most `maxBytes` data each (an extent may straddle
 * two batches). One batch = one resumable unit of the NBD transfer mode: one chunked upload that
 * fits a Lambda invocation; a run records the index of the last finished batch.
 */
export function batchExtents(extents: readonly Extent[], maxBytes: number): Extent[][] {
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)
    throw new RangeError('maxBytes must be a positive integer');
  const batches: Extent[][] = [];
  let current: Extent[] = [];
  let room = maxBytes;
  for (const e of extents) {
    let offset = e.offset;
    let left = e.length;
    while (left > 0) {
      const take = Math.min(left, room);
      current.push({ offset, length: take });
      offset += take;
      left -= take;
      room -= take;
      if (room === 0) {
        batches.push(current);
        current = [];
        room = maxBytes;
      }
    }
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
