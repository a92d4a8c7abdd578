import { describe, expect, it } from 'vitest';
import { BLOCK_SIZE, BlockStore, Disk } from '../../../sim/disk.js';
import { XapiError } from '../../../sim/errors.js';
import { readPinned } from '../../../sim/nbd-hosts.js';

const MiB = 1024 * 1024;

describe('sparse copy-on-write disks', () => {
  it('costs only what was written and reads zeros for holes', () => {
    const store = new BlockStore(100 * 1024 * MiB);
    const d = new Disk(store, 100 * 1024 * MiB);
    d.write(5 * BLOCK_SIZE + 100, Buffer.from('hello'));
    expect(store.used).toBe(BLOCK_SIZE);
    expect(d.allocated()).toEqual([5]);
    expect(d.read(5 * BLOCK_SIZE + 98, 9).toString('latin1')).toBe('\0\0hello\0\0');
  });

  it('snapshots share blocks; a write copies; diff finds changes on either side', () => {
    const store = new BlockStore(1024 * MiB);
    const d = new Disk(store, 64 * MiB);
    d.write(0, Buffer.alloc(3 * BLOCK_SIZE, 1));
    const snap = d.share();
    expect(store.used).toBe(3 * BLOCK_SIZE);
    d.write(BLOCK_SIZE + 7, Buffer.from([9]));
    expect(store.used).toBe(4 * BLOCK_SIZE);
    expect(snap.read(BLOCK_SIZE + 7, 1)[0]).toBe(1);
    expect(d.read(BLOCK_SIZE + 7, 1)[0]).toBe(9);
    expect(d.diff(snap)).toEqual([1]);
    // a block only the base has is part of the difference too
    const other = snap.share();
    other.write(10 * BLOCK_SIZE, Buffer.from([1]));
    expect(other.diff(snap)).toEqual([10]);
    expect(snap.diff(other)).toEqual([10]);
    // a second write to an unshared block is in place
    d.write(BLOCK_SIZE + 8, Buffer.from([9]));
    expect(store.used).toBe(5 * BLOCK_SIZE);
    d.release();
    expect(store.used).toBe(4 * BLOCK_SIZE);
  });

  it('a write spanning whole blocks replaces them without touching the shared or recycled bytes', () => {
    const store = new BlockStore(1024 * MiB);
    const d = new Disk(store, 64 * MiB);
    d.write(0, Buffer.alloc(3 * BLOCK_SIZE, 1));
    const snap = d.share();
    // block 0 partly, blocks 1 and 2 wholly: only block 0 keeps bytes of its old version
    d.write(BLOCK_SIZE - 4, Buffer.alloc(2 * BLOCK_SIZE + 4, 7));
    expect(d.read(0, BLOCK_SIZE - 4).every((b) => b === 1)).toBe(true);
    expect(d.read(BLOCK_SIZE - 4, 2 * BLOCK_SIZE + 4).every((b) => b === 7)).toBe(true);
    expect(snap.read(0, 3 * BLOCK_SIZE).every((b) => b === 1)).toBe(true);
    // a whole-block write into a hole of a disk whose old blocks went back to the spare list
    snap.release();
    d.release();
    const e = new Disk(store, 64 * MiB);
    e.write(4 * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE, 3));
    expect(e.read(4 * BLOCK_SIZE, BLOCK_SIZE).every((b) => b === 3)).toBe(true);
    expect(e.read(5 * BLOCK_SIZE, 8).every((b) => b === 0)).toBe(true);
  });

  it('hash is canonical: equal content, equal hash, whatever is allocated', () => {
    const store = new BlockStore(1024 * MiB);
    const a = new Disk(store, 16 * MiB);
    const b = new Disk(store, 16 * MiB);
    a.write(3 * MiB, Buffer.from('x'));
    b.write(3 * MiB, Buffer.from('x'));
    b.write(9 * MiB, Buffer.alloc(BLOCK_SIZE, 0).subarray(0, 100));
    expect(a.hash()).toBe(b.hash());
    b.write(9 * MiB, Buffer.from('y'));
    expect(a.hash()).not.toBe(b.hash());
    expect(new Disk(store, 16 * MiB).hash()).not.toBe(new Disk(store, 18 * MiB).hash());
  });

  it('refuses writes past the end and past SR capacity', () => {
    const store = new BlockStore(2 * BLOCK_SIZE);
    const d = new Disk(store, 8 * BLOCK_SIZE);
    expect(() => d.write(8 * BLOCK_SIZE - 1, Buffer.alloc(2))).toThrow(XapiError);
    d.write(0, Buffer.alloc(2 * BLOCK_SIZE, 1));
    try {
      d.write(5 * BLOCK_SIZE, Buffer.from([1]));
      expect.unreachable();
    } catch (e) {
      expect((e as XapiError).description).toEqual([
        'SR_BACKEND_FAILURE_44',
        '',
        'There is insufficient space',
        '',
      ]);
    }
    // an in-place write to an owned block needs no space
    d.write(10, Buffer.from([2]));
    expect(d.read(10, 1)[0]).toBe(2);
  });

  it('physical copies into another store cost space there and stay independent', () => {
    const a = new BlockStore(1024 * MiB);
    const b = new BlockStore(1024 * MiB);
    const d = new Disk(a, 8 * MiB);
    d.write(0, Buffer.alloc(10, 4));
    const c = d.copyTo(b);
    expect(b.used).toBe(BLOCK_SIZE);
    d.write(0, Buffer.alloc(10, 5));
    expect(c.read(0, 1)[0]).toBe(4);
    c.write(1, Buffer.from([6]));
    expect(d.read(0, 2)).toEqual(Buffer.from([5, 5]));
  });

  it('NBD reads inside a block are views that later writes never change; reads across blocks are copies', () => {
    const store = new BlockStore(1024 * MiB);
    const d = new Disk(store, 8 * MiB);
    d.write(0, Buffer.alloc(BLOCK_SIZE * 2, 1));
    const view = readPinned(d, 4096, 65536);
    expect(view.equals(Buffer.alloc(65536, 1))).toBe(true);
    d.write(0, Buffer.alloc(BLOCK_SIZE, 2)); // the pinned block is copied before this write
    expect(view.equals(Buffer.alloc(65536, 1))).toBe(true);
    expect(readPinned(d, 4096, 65536).equals(Buffer.alloc(65536, 2))).toBe(true);
    expect(readPinned(d, 6 * MiB, 4096).equals(Buffer.alloc(4096))).toBe(true); // a hole reads as zeros
    const across = readPinned(d, BLOCK_SIZE - 512, 1024);
    expect(across.equals(d.read(BLOCK_SIZE - 512, 1024))).toBe(true);
    expect([...across.subarray(0, 512)]).toEqual(Array(512).fill(2));
    expect([...across.subarray(512)]).toEqual(Array(512).fill(1));
  });
});
