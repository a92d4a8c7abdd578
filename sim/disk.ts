/**
 * Sparse, copy-on-write disk contents. A disk is a map of 2 MiB blocks; snapshots and clones share
 * Block objects, and a write to a shared (or frozen) block copies it first. Because a Block's bytes
 * only change while exactly one disk holds it, "same Block object" means "same content and same
 * history", which is what the delta export (base=) needs: the blocks that differ since the common
 * ancestor are exactly those whose Block identity differs.
 */
import { createHash } from 'node:crypto';
import { SR_FULL_ERROR, VDI_IO_ERROR } from './errors.js';

export const BLOCK_SIZE = 2 * 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

/** Released block buffers, reused: first-touching fresh memory is slow on some hosts (page faults). */
const spare: Buffer[] = [];
const MAX_SPARE = 64;

/** A BLOCK_SIZE buffer with undefined content. */
export function takeBuffer(): Buffer {
  return spare.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
}

function giveBack(buf: Buffer): void {
  if (spare.length < MAX_SPARE && buf.length === BLOCK_SIZE) spare.push(buf);
}

let nextBlockId = 1;

/** CBT logs at 64 KiB: 32 regions per 2 MiB block, one bit each in a Block's `dirty` mask. */
export const CBT_GRAIN = 64 * 1024;
const REGIONS = BLOCK_SIZE / CBT_GRAIN;
const ALL_REGIONS = 0xffffffff;
const NO_DATA = Buffer.alloc(0);

export class Block {
  /** identity that outlives the data (CBT metadata of a data-destroyed snapshot keeps it) */
  readonly id = nextBlockId++;
  refs = 0;
  /** the generation this one was copied from on write (undefined: made from zeros or imported whole) */
  parent: Block | undefined;
  /** 64 KiB regions written since this generation was made (bit k = region k of the block) */
  dirty = 0;
  /** the buffer may be shared with another Block (e.g. a copy to another SR): never write in place */
  frozen = false;
  constructor(
    readonly store: BlockStore,
    public buf: Buffer,
  ) {}
}

/** One SR's physical space: counts the distinct blocks its disks hold. */
export class BlockStore {
  used = 0;
  onChange: () => void = () => {};
  constructor(public capacity: number) {}

  free(): number {
    return this.capacity - this.used;
  }

  reserve(n: number): void {
    if (this.used + n * BLOCK_SIZE > this.capacity) throw SR_FULL_ERROR();
  }

  alloc(buf: Buffer): Block {
    this.reserve(1);
    this.used += BLOCK_SIZE;
    this.onChange();
    return new Block(this, buf);
  }

  release(): void {
    this.used -= BLOCK_SIZE;
    this.onChange();
  }

  /** Space held beyond the blocks (thick-provisioned LVs); SR full when it does not fit. */
  charge(bytes: number): void {
    if (bytes <= 0) return;
    if (this.used + bytes > this.capacity) throw SR_FULL_ERROR();
    this.used += bytes;
    this.onChange();
  }

  uncharge(bytes: number): void {
    this.used -= bytes;
    this.onChange();
  }
}

const isZero = (b: Buffer): boolean => b.equals(ZERO_BLOCK);

export class Disk {
  readonly blocks = new Map<number, Block>();
  constructor(
    readonly store: BlockStore,
    public size: number,
  ) {}

  private hold(i: number, blk: Block): void {
    const old = this.blocks.get(i);
    blk.refs++;
    this.blocks.set(i, blk);
    if (old) this.drop(old);
  }

  private drop(blk: Block): void {
    blk.refs--;
    if (blk.refs === 0) {
      blk.store.release();
      if (!blk.frozen) giveBack(blk.buf);
      // CBT history (parent links, data-destroyed snapshots) may keep the Block: never its bytes
      blk.buf = NO_DATA;
    }
  }

  /**
   * A block this disk may write in place. `whole`: the caller overwrites all of it, so a new
   * buffer needs neither the old bytes nor zeros (a profile of the destination's import showed
   * that copy-on-write copy and zero fill, of bytes about to be overwritten, as a fifth of its CPU).
   */
  private writable(i: number, whole: boolean): Block {
    const cur = this.blocks.get(i);
    if (cur && cur.refs === 1 && !cur.frozen) return cur;
    const buf = takeBuffer();
    if (!whole) {
      if (cur) cur.buf.copy(buf);
      else buf.fill(0);
    }
    const blk = this.store.alloc(buf);
    blk.parent = cur;
    this.hold(i, blk);
    return blk;
  }

  /** How many new blocks a write of [offset, offset+length) would allocate. */
  private newBlocksFor(offset: number, length: number): number {
    let n = 0;
    for (let i = Math.floor(offset / BLOCK_SIZE); i * BLOCK_SIZE < offset + length; i++) {
      const cur = this.blocks.get(i);
      if (!cur || cur.refs > 1 || cur.frozen) n++;
    }
    return n;
  }

  write(offset: number, data: Buffer): void {
    if (offset < 0 || offset + data.length > this.size) throw VDI_IO_ERROR();
    if (data.length === 0) return;
    this.store.reserve(this.newBlocksFor(offset, data.length));
    let pos = 0;
    while (pos < data.length) {
      const abs = offset + pos;
      const i = Math.floor(abs / BLOCK_SIZE);
      const within = abs - i * BLOCK_SIZE;
      const n = Math.min(BLOCK_SIZE - within, data.length - pos);
      const blk = this.writable(i, n === BLOCK_SIZE);
      data.copy(blk.buf, within, pos, pos + n);
      blk.dirty |= regionMask(within, n);
      pos += n;
    }
  }

  /** Replace whole block i with `buf` (taken over, must be BLOCK_SIZE long) — the fast import path. */
  putBlock(i: number, buf: Buffer, frozen = false): void {
    if (i < 0 || i * BLOCK_SIZE >= this.size) throw VDI_IO_ERROR();
    const blk = this.store.alloc(buf);
    blk.frozen = frozen;
    blk.dirty = ALL_REGIONS;
    this.hold(i, blk);
  }

  read(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    let pos = 0;
    while (pos < length) {
      const abs = offset + pos;
      const i = Math.floor(abs / BLOCK_SIZE);
      const within = abs - i * BLOCK_SIZE;
      const n = Math.min(BLOCK_SIZE - within, length - pos);
      const blk = this.blocks.get(i);
      if (blk) blk.buf.copy(out, pos, within, within + n);
      pos += n;
    }
    return out;
  }

  /** Block i's current bytes (shared: do not modify); zeros when unallocated. Pinned buffers (handed to a
   *  socket, which may hold them after the call) are never written in place or recycled. */
  blockData(i: number, pin = false): Buffer {
    const blk = this.blocks.get(i);
    if (!blk) return ZERO_BLOCK;
    if (pin) blk.frozen = true;
    return blk.buf;
  }

  allocated(): number[] {
    return [...this.blocks.keys()].sort((a, b) => a - b);
  }

  /** Block index → the Block generation: what CBT metadata keeps once the data is gone. */
  generations(): Map<number, Block> {
    return new Map(this.blocks);
  }

  /** Blocks written since the common ancestor with `base`, on either side. */
  diff(base: Disk): number[] {
    const out = new Set<number>();
    for (const [i, blk] of this.blocks) if (base.blocks.get(i) !== blk) out.add(i);
    for (const [i, blk] of base.blocks) if (this.blocks.get(i) !== blk) out.add(i);
    return [...out].sort((a, b) => a - b);
  }

  /** A snapshot/clone in the same SR: shares every block. */
  share(): Disk {
    const d = new Disk(this.store, this.size);
    for (const [i, blk] of this.blocks) {
      blk.refs++;
      d.blocks.set(i, blk);
    }
    return d;
  }

  /** A physical copy into `store` (costs space there; buffers are shared until written). */
  copyTo(store: BlockStore): Disk {
    store.reserve(this.blocks.size);
    const d = new Disk(store, this.size);
    for (const i of this.allocated()) d.copyBlockFrom(this, i);
    return d;
  }

  /** Make block i equal to `src`'s block i (a physical copy). */
  copyBlockFrom(src: Disk, i: number): void {
    const blk = src.blocks.get(i);
    if (!blk) {
      if (this.blocks.has(i))
        this.write(i * BLOCK_SIZE, ZERO_BLOCK.subarray(0, Math.min(BLOCK_SIZE, this.size - i * BLOCK_SIZE)));
      return;
    }
    blk.frozen = true;
    this.putBlock(i, blk.buf, true);
  }

  resize(size: number): void {
    this.size = size;
    for (const [i, blk] of this.blocks) {
      if (i * BLOCK_SIZE >= size) {
        this.blocks.delete(i);
        this.drop(blk);
      }
    }
  }

  /** Drop every block (the VDI is destroyed). */
  release(): void {
    for (const blk of this.blocks.values()) this.drop(blk);
    this.blocks.clear();
  }

  /** Canonical content hash: virtual size + each non-zero block's index and bytes. */
  hash(): string {
    const h = createHash('sha256');
    h.update(`size:${this.size}\n`);
    for (const i of this.allocated()) {
      const buf = this.blocks.get(i)!.buf;
      if (isZero(buf)) continue;
      h.update(`block:${i}\n`);
      h.update(buf);
    }
    return h.digest('hex');
  }
}

/** Bits of the 64 KiB regions that [within, within+length) of a block touches. */
function regionMask(within: number, length: number): number {
  const first = Math.floor(within / CBT_GRAIN);
  const last = Math.floor((within + length - 1) / CBT_GRAIN);
  if (last - first + 1 >= REGIONS) return ALL_REGIONS;
  return (((1 << (last - first + 1)) - 1) << first) >>> 0;
}

/**
 * The 64 KiB regions of one block index that differ between two generations of it, as tapdisk's CBT
 * log would report them: the writes along the copy-on-write chain from one to the other. Generations
 * with no such chain between them (an import replaced the block, a resize dropped it) differ everywhere.
 */
export function changedRegions(from: Block | undefined, to: Block | undefined): number {
  if (from === to) return 0;
  for (const [newer, older] of [
    [to, from],
    [from, to],
  ] as const) {
    if (!newer) continue;
    let mask = 0;
    for (let b: Block | undefined = newer; b; b = b.parent) {
      if (b === older) return mask >>> 0;
      mask |= b.dirty;
    }
    if (!older) return mask >>> 0;
  }
  return ALL_REGIONS;
}
