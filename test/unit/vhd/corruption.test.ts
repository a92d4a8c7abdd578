/** One test per verification rule: the reader and the verifier both reject, with the code and offset. */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  type ParseLimits,
  readVhdStream,
  type VhdErrorCode,
  VhdFormatError,
  VhdVerifier,
} from '../../../functions/vhd/index.js';
import {
  buildVhd,
  editFooter,
  editHeader,
  fixHeaderChecksum,
  flip,
  KiB,
  readable,
  vhdBytes,
} from './helpers.js';

const BS = 64 * KiB;
/** 8 blocks of 64 KiB, blocks 1, 2, 6 included: BAT at 2048 (1 sector), blocks from 2560, span 65536 + 512. */
const base = () => vhdBytes({ virtualSize: 8 * BS, blockSize: BS, blocks: [1, 2, 6] });
const SPAN = BS + 512;

async function readerError(bytes: Buffer, limits: ParseLimits, chunks: number[]): Promise<unknown> {
  try {
    const { blocks } = await readVhdStream(readable(bytes, chunks), limits);
    for await (const _ of blocks());
  } catch (err) {
    return err;
  }
  return undefined;
}

async function verifierError(bytes: Buffer, limits: ParseLimits, chunks: number[]) {
  const verifier = new VhdVerifier(limits);
  let forwarded = 0;
  let error: unknown;
  try {
    await pipeline(
      readable(bytes, chunks),
      verifier,
      new Writable({
        write(c: Buffer, _e, cb) {
          forwarded += c.length;
          cb();
        },
      }),
    );
  } catch (err) {
    error = err;
  }
  const total = await verifier.info.then(
    (i) => i.totalLength,
    () => undefined,
  );
  return { error, forwarded, total };
}

async function expectRejected(bytes: Buffer, code: VhdErrorCode, offset?: number, limits: ParseLimits = {}) {
  for (const chunks of [[bytes.length], [4096], [1000, 1, 513]]) {
    const r = await readerError(bytes, limits, chunks);
    expect(r, `reader, chunks ${chunks}`).toBeInstanceOf(VhdFormatError);
    expect((r as VhdFormatError).code).toBe(code);
    if (offset !== undefined) expect((r as VhdFormatError).offset).toBe(offset);
    const v = await verifierError(bytes, limits, chunks);
    expect(v.error, `verifier, chunks ${chunks}`).toBeInstanceOf(VhdFormatError);
    expect((v.error as VhdFormatError).code).toBe(code);
    // Never reported complete: the consumer did not get all the bytes the header announced.
    if (v.total !== undefined) expect(v.forwarded).toBeLessThan(v.total);
    else expect(v.forwarded).toBe(0);
  }
}

describe('VHD verification rules', () => {
  it('accepts the unmodified stream (control)', async () => {
    const bytes = await base();
    expect(await readerError(bytes, {}, [777])).toBeUndefined();
    const v = await verifierError(bytes, {}, [777]);
    expect(v.error).toBeUndefined();
    expect(v.forwarded).toBe(bytes.length);
    expect(v.total).toBe(bytes.length);
  });

  it('bad footer cookie', async () => {
    const b = await base();
    flip(b, 3, 0x20);
    await expectRejected(b, 'BAD_COOKIE', 0);
  });

  it('bad footer checksum', async () => {
    const b = await base();
    flip(b, 200, 1);
    await expectRejected(b, 'BAD_CHECKSUM', 64);
  });

  it('bad header cookie', async () => {
    const b = await base();
    flip(b, 512, 1);
    await expectRejected(b, 'BAD_COOKIE', 512);
  });

  it('bad header checksum', async () => {
    const b = await base();
    flip(b, 512 + 900, 1);
    await expectRejected(b, 'BAD_CHECKSUM', 512 + 36);
  });

  it('unsupported footer version', async () => {
    const b = await base();
    editFooter(b, { version: 0x00020000 });
    await expectRejected(b, 'UNSUPPORTED_VERSION', 12);
  });

  it('unsupported header version', async () => {
    const b = await base();
    editHeader(b, { headerVersion: 0x00010001 });
    await expectRejected(b, 'UNSUPPORTED_VERSION', 512 + 24);
  });

  it('fixed disk', async () => {
    const b = await base();
    editFooter(b, { diskType: 2 });
    await expectRejected(b, 'FIXED_DISK', 60);
  });

  it('unknown disk type', async () => {
    const b = await base();
    editFooter(b, { diskType: 5 });
    await expectRejected(b, 'UNSUPPORTED_DISK_TYPE', 60);
  });

  it('block size not a power of two', async () => {
    const b = await base();
    editHeader(b, { blockSize: 3 * 32 * KiB });
    await expectRejected(b, 'BAD_BLOCK_SIZE', 512 + 32);
  });

  it('footer data offset inside the footer copy', async () => {
    const b = await base();
    editFooter(b, { dataOffset: 100 });
    await expectRejected(b, 'BAD_DATA_OFFSET', 16);
  });

  it('header data offset not all ones', async () => {
    const b = await base();
    b.writeBigUInt64BE(0n, 512 + 8);
    fixHeaderChecksum(b);
    await expectRejected(b, 'BAD_DATA_OFFSET', 512 + 8);
  });

  it('BAT smaller than the disk', async () => {
    const b = await base();
    editHeader(b, { maxTableEntries: 7 });
    await expectRejected(b, 'BAD_TABLE_SIZE', 512 + 28);
  });

  it('BAT before the header (not forward-readable)', async () => {
    const b = await base();
    editHeader(b, { tableOffset: 1024 });
    await expectRejected(b, 'BAD_STRUCTURE_ORDER', 512 + 16);
  });

  it('BAT entry inside the header area', async () => {
    const b = await base();
    b.writeUInt32BE(1, 2048 + 4 * 1);
    await expectRejected(b, 'BAT_IN_HEADER_AREA', 2048 + 4);
  });

  it('BAT entry overlapping the BAT itself', async () => {
    const b = await base();
    b.writeUInt32BE(3, 2048 + 4 * 6);
    await expectRejected(b, 'BAT_IN_HEADER_AREA', 2048 + 24);
  });

  it('BAT entry for a block beyond the virtual size', async () => {
    const b = await base();
    editHeader(b, { maxTableEntries: 9 });
    b.writeUInt32BE((2560 + 3 * SPAN) / 512, 2048 + 4 * 8);
    await expectRejected(b, 'BAT_PAST_END', 2048 + 32);
  });

  it('BAT entry past the end of a stream of known length', async () => {
    const b = await base();
    await expectRejected(b, 'BAT_PAST_END', 2048 + 24, { expectedLength: b.length - SPAN });
  });

  it('known stream length longer than the BAT implies', async () => {
    const b = await base();
    await expectRejected(b, 'TRAILING_BYTES', b.length, { expectedLength: b.length + 512 });
  });

  it('BAT entries overlapping each other', async () => {
    const b = await base();
    b.writeUInt32BE(b.readUInt32BE(2048 + 4) + 8, 2048 + 8);
    await expectRejected(b, 'BAT_OVERLAP', 2048 + 8);
  });

  it('block placed between header and BAT (behind the reader once the BAT is read)', async () => {
    const b = buildVhd({
      virtualSize: 4 * BS,
      blockSize: BS,
      tableAt: 1536 + SPAN + 512,
      blocks: [{ index: 0, at: 1536 }],
    });
    await expectRejected(b, 'BAT_NOT_ASCENDING', 1536 + SPAN + 512);
  });

  it('metadata larger than the verifier may buffer', async () => {
    const b = await base();
    await expectRejected(b, 'METADATA_TOO_LARGE', 512 + 16, { maxMetadataBytes: 2048 });
  });

  it('truncated in the middle of a block', async () => {
    const b = await base();
    await expectRejected(b.subarray(0, 2560 + SPAN + 1000), 'TRUNCATED', 2560 + SPAN + 1000);
  });

  it('truncated before the BAT is complete', async () => {
    const b = await base();
    await expectRejected(b.subarray(0, 2050), 'TRUNCATED', 2050);
  });

  it('missing trailing footer', async () => {
    const b = await base();
    await expectRejected(b.subarray(0, b.length - 512), 'TRUNCATED', b.length - 512);
  });

  it('one byte of the trailing footer missing', async () => {
    const b = await base();
    await expectRejected(b.subarray(0, b.length - 1), 'TRUNCATED', b.length - 1);
  });

  it('trailing footer differs from the copy (valid on its own)', async () => {
    const b = await base();
    editFooter(b, { timestamp: 99 }, 'trailer');
    await expectRejected(b, 'FOOTER_MISMATCH', b.length - 512);
  });

  it('trailing footer corrupt', async () => {
    const b = await base();
    flip(b, b.length - 512 + 300, 4);
    await expectRejected(b, 'BAD_CHECKSUM', b.length - 512 + 64);
  });

  it('extra bytes after the trailing footer', async () => {
    const b = await base();
    await expectRejected(Buffer.concat([b, Buffer.from([0])]), 'TRAILING_BYTES', b.length);
    await expectRejected(Buffer.concat([b, Buffer.alloc(512)]), 'TRAILING_BYTES', b.length);
  });

  it('empty stream', async () => {
    await expectRejected(Buffer.alloc(0), 'TRUNCATED', 0);
  });
});
