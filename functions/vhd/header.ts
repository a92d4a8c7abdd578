import { readU64, vhdChecksum } from './footer.js';
import { HEADER_SIZE, type VhdHeader, type VhdParentLocator } from './types.js';

export const HEADER_COOKIE = 'cxsparse';
export const HEADER_CHECKSUM_OFFSET = 36;
export const PARENT_NAME_BYTES = 512;
export const PARENT_LOCATOR_COUNT = 8;
export const PLATFORM_MACX = 0x4d616358;

function utf16beEncode(s: string): Buffer {
  const le = Buffer.from(s, 'utf16le');
  return le.swap16();
}

function utf16beDecode(b: Buffer): string {
  const copy = Buffer.from(b);
  let end = copy.length & ~1;
  while (end >= 2 && copy[end - 1] === 0 && copy[end - 2] === 0) end -= 2;
  return copy.subarray(0, end).swap16().toString('utf16le');
}

/** Serializes a dynamic disk header; the checksum field is computed. */
export function encodeHeader(h: Omit<VhdHeader, 'checksum'> & { checksum?: number }): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.write(HEADER_COOKIE, 0, 'latin1');
  b.writeBigUInt64BE(0xffffffffffffffffn, 8);
  b.writeBigUInt64BE(BigInt(h.tableOffset), 16);
  b.writeUInt32BE(h.headerVersion >>> 0, 24);
  b.writeUInt32BE(h.maxTableEntries >>> 0, 28);
  b.writeUInt32BE(h.blockSize >>> 0, 32);
  h.parentUniqueId.copy(b, 40, 0, 16);
  b.writeUInt32BE(h.parentTimestamp >>> 0, 56);
  const name = utf16beEncode(h.parentUnicodeName);
  if (name.length > PARENT_NAME_BYTES)
    throw new RangeError('parent unicode name longer than 256 UTF-16 units');
  name.copy(b, 64);
  if (h.parentLocators.length > PARENT_LOCATOR_COUNT) throw new RangeError('at most 8 parent locators');
  h.parentLocators.forEach((l, i) => {
    const at = 576 + 24 * i;
    b.writeUInt32BE(l.platformCode >>> 0, at);
    b.writeUInt32BE(l.dataSpace >>> 0, at + 4);
    b.writeUInt32BE(l.dataLength >>> 0, at + 8);
    b.writeBigUInt64BE(BigInt(l.dataOffset), at + 16);
  });
  b.writeUInt32BE(vhdChecksum(b, HEADER_CHECKSUM_OFFSET), HEADER_CHECKSUM_OFFSET);
  return b;
}

/** The raw 64-bit "data offset" of a header (all-ones in a valid one), as a bigint. */
export function headerDataOffset(buf: Buffer): bigint {
  return buf.readBigUInt64BE(8);
}

/** Decodes the fields of a 1024-byte header without validating them (see layout.ts). */
export function decodeHeader(buf: Buffer): VhdHeader {
  const parentLocators: VhdParentLocator[] = [];
  for (let i = 0; i < PARENT_LOCATOR_COUNT; i++) {
    const at = 576 + 24 * i;
    parentLocators.push({
      platformCode: buf.readUInt32BE(at),
      dataSpace: buf.readUInt32BE(at + 4),
      dataLength: buf.readUInt32BE(at + 8),
      dataOffset: readU64(buf, at + 16),
    });
  }
  return {
    tableOffset: readU64(buf, 16),
    headerVersion: buf.readUInt32BE(24),
    maxTableEntries: buf.readUInt32BE(28),
    blockSize: buf.readUInt32BE(32),
    checksum: buf.readUInt32BE(HEADER_CHECKSUM_OFFSET),
    parentUniqueId: Buffer.from(buf.subarray(40, 56)),
    parentTimestamp: buf.readUInt32BE(56),
    parentUnicodeName: utf16beDecode(buf.subarray(64, 64 + PARENT_NAME_BYTES)),
    parentLocators,
  };
}
