import { FOOTER_SIZE, SECTOR_SIZE, type VhdFooter, type VhdGeometry } from './types.js';

export const FOOTER_COOKIE = 'conectix';
export const FOOTER_CHECKSUM_OFFSET = 64;

/** One's complement of the byte sum of `buf`, with the 4-byte checksum field at `checksumOffset` taken as zero. */
export function vhdChecksum(buf: Uint8Array, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) sum += buf[i]!;
  for (let i = checksumOffset; i < checksumOffset + 4; i++) sum -= buf[i]!;
  return ~sum >>> 0;
}

/** CHS geometry for a disk of `size` bytes, per the MS-VHD specification appendix. */
export function chsGeometry(size: number): VhdGeometry {
  let totalSectors = Math.floor(size / SECTOR_SIZE);
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255;
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}

/** Serializes a footer; the checksum field is computed (the `checksum` property is ignored). */
export function encodeFooter(f: Omit<VhdFooter, 'checksum'> & { checksum?: number }): Buffer {
  const b = Buffer.alloc(FOOTER_SIZE);
  b.write(FOOTER_COOKIE, 0, 'latin1');
  b.writeUInt32BE(f.features >>> 0, 8);
  b.writeUInt32BE(f.version >>> 0, 12);
  b.writeBigUInt64BE(f.dataOffset < 0 ? 0xffffffffffffffffn : BigInt(f.dataOffset), 16);
  b.writeUInt32BE(f.timestamp >>> 0, 24);
  b.write(f.creatorApp.padEnd(4, '\0').slice(0, 4), 28, 'latin1');
  b.writeUInt32BE(f.creatorVersion >>> 0, 32);
  b.writeUInt32BE(f.creatorHostOs >>> 0, 36);
  b.writeBigUInt64BE(BigInt(f.originalSize), 40);
  b.writeBigUInt64BE(BigInt(f.currentSize), 48);
  b.writeUInt16BE(f.geometry.cylinders, 56);
  b.writeUInt8(f.geometry.heads, 58);
  b.writeUInt8(f.geometry.sectorsPerTrack, 59);
  b.writeUInt32BE(f.diskType >>> 0, 60);
  f.uniqueId.copy(b, 68, 0, 16);
  b.writeUInt8(f.savedState, 84);
  b.writeUInt32BE(vhdChecksum(b, FOOTER_CHECKSUM_OFFSET), FOOTER_CHECKSUM_OFFSET);
  return b;
}

/** Reads a 64-bit field as a number; values above 2^53 (such as the all-ones "none") become -1. */
export function readU64(buf: Buffer, offset: number): number {
  const v = buf.readBigUInt64BE(offset);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

/** Decodes the fields of a 512-byte footer without validating them (see layout.ts for the checks). */
export function decodeFooter(buf: Buffer): VhdFooter {
  return {
    features: buf.readUInt32BE(8),
    version: buf.readUInt32BE(12),
    dataOffset: readU64(buf, 16),
    timestamp: buf.readUInt32BE(24),
    creatorApp: buf.toString('latin1', 28, 32),
    creatorVersion: buf.readUInt32BE(32),
    creatorHostOs: buf.readUInt32BE(36),
    originalSize: readU64(buf, 40),
    currentSize: readU64(buf, 48),
    geometry: {
      cylinders: buf.readUInt16BE(56),
      heads: buf.readUInt8(58),
      sectorsPerTrack: buf.readUInt8(59),
    },
    diskType: buf.readUInt32BE(60),
    checksum: buf.readUInt32BE(FOOTER_CHECKSUM_OFFSET),
    uniqueId: Buffer.from(buf.subarray(68, 84)),
    savedState: buf.readUInt8(84),
  };
}
