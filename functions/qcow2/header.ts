/** The qcow2 header (v2 and v3) and its checks. */
import {
  HEADER_LENGTH,
  INCOMPAT_COMPRESSION,
  INCOMPAT_CORRUPT,
  INCOMPAT_DATA_FILE,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTL2,
  MAX_CLUSTER_BITS,
  MIN_CLUSTER_BITS,
  QCOW2_MAGIC,
  Qcow2FormatError,
  type Qcow2Header,
} from './types.js';

const V2_LENGTH = 72;
/** Bytes a reader needs before it knows a v3 header's full length. */
export const HEADER_PREFIX = 104;

function u64(b: Buffer, at: number, field: string): number {
  const v = b.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new Qcow2FormatError('BAD_HEADER', `${field} ${v} is too large`, at);
  return Number(v);
}

/** Header fields from the first bytes of an image (at least HEADER_PREFIX of them, or 72 for v2). */
export function decodeHeader(b: Buffer): Qcow2Header {
  if (b.length < V2_LENGTH) throw new Qcow2FormatError('TRUNCATED', 'the header is shorter than 72 bytes', 0);
  if (b.readUInt32BE(0) !== QCOW2_MAGIC) throw new Qcow2FormatError('BAD_MAGIC', 'not a qcow2 image', 0);
  const version = b.readUInt32BE(4);
  if (version !== 2 && version !== 3)
    throw new Qcow2FormatError('UNSUPPORTED_VERSION', `version ${version} (2 and 3 are read)`, 4);
  if (version === 3 && b.length < HEADER_PREFIX)
    throw new Qcow2FormatError('TRUNCATED', 'a v3 header is at least 104 bytes', 0);
  const v3 = version === 3;
  const headerLength = v3 ? b.readUInt32BE(100) : V2_LENGTH;
  const h: Qcow2Header = {
    version,
    backingFileOffset: u64(b, 8, 'backing_file_offset'),
    backingFileSize: b.readUInt32BE(16),
    clusterBits: b.readUInt32BE(20),
    virtualSize: u64(b, 24, 'size'),
    cryptMethod: b.readUInt32BE(32),
    l1Size: b.readUInt32BE(36),
    l1TableOffset: u64(b, 40, 'l1_table_offset'),
    refcountTableOffset: u64(b, 48, 'refcount_table_offset'),
    refcountTableClusters: b.readUInt32BE(56),
    nbSnapshots: b.readUInt32BE(60),
    snapshotsOffset: u64(b, 64, 'snapshots_offset'),
    incompatibleFeatures: v3 ? b.readBigUInt64BE(72) : 0n,
    compatibleFeatures: v3 ? b.readBigUInt64BE(80) : 0n,
    autoclearFeatures: v3 ? b.readBigUInt64BE(88) : 0n,
    refcountOrder: v3 ? b.readUInt32BE(96) : 4,
    headerLength,
    compressionType: v3 && headerLength > 104 && b.length > 104 ? b.readUInt8(104) : 0,
  };
  checkHeader(h);
  return h;
}

/** What this codec cannot read is refused by name, before any table is trusted. */
export function checkHeader(h: Qcow2Header): void {
  if (h.clusterBits < MIN_CLUSTER_BITS || h.clusterBits > MAX_CLUSTER_BITS)
    throw new Qcow2FormatError('BAD_HEADER', `cluster_bits ${h.clusterBits} is outside 9..21`, 20);
  if (h.version === 3 && (h.headerLength < HEADER_PREFIX || h.headerLength % 8 !== 0))
    throw new Qcow2FormatError('BAD_HEADER', `header_length ${h.headerLength} (≥ 104, a multiple of 8)`, 100);
  if (h.cryptMethod !== 0)
    throw new Qcow2FormatError('UNSUPPORTED_FEATURE', `encrypted image (crypt_method ${h.cryptMethod})`, 32);
  if (h.refcountOrder > 6)
    throw new Qcow2FormatError('BAD_HEADER', `refcount_order ${h.refcountOrder} > 6`, 96);
  const named: [bigint, string][] = [
    [INCOMPAT_CORRUPT, 'the image is marked corrupt'],
    [INCOMPAT_DATA_FILE, 'an external data file holds the data'],
    [INCOMPAT_COMPRESSION, 'a compression type other than zlib'],
    [INCOMPAT_EXTL2, 'extended L2 entries (subclusters)'],
  ];
  for (const [bit, what] of named)
    if (h.incompatibleFeatures & bit) throw new Qcow2FormatError('UNSUPPORTED_FEATURE', what, 72);
  const known =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
  const unknown = h.incompatibleFeatures & ~known;
  if (unknown)
    throw new Qcow2FormatError(
      'UNSUPPORTED_FEATURE',
      `incompatible feature bits 0x${unknown.toString(16)}`,
      72,
    );
  const clusterSize = 2 ** h.clusterBits;
  for (const [name, off] of [
    ['l1_table_offset', h.l1TableOffset],
    ['refcount_table_offset', h.refcountTableOffset],
  ] as const)
    if (off % clusterSize !== 0)
      throw new Qcow2FormatError(
        'BAD_HEADER',
        `${name} ${off} is not cluster aligned`,
        name === 'l1_table_offset' ? 40 : 48,
      );
}

/** A v3 header (HEADER_LENGTH bytes) followed by the end-of-extensions marker. */
export function encodeHeader(h: Omit<Qcow2Header, 'version' | 'headerLength'>): Buffer {
  const b = Buffer.alloc(HEADER_LENGTH + 8);
  b.writeUInt32BE(QCOW2_MAGIC, 0);
  b.writeUInt32BE(3, 4);
  b.writeBigUInt64BE(BigInt(h.backingFileOffset), 8);
  b.writeUInt32BE(h.backingFileSize, 16);
  b.writeUInt32BE(h.clusterBits, 20);
  b.writeBigUInt64BE(BigInt(h.virtualSize), 24);
  b.writeUInt32BE(h.cryptMethod, 32);
  b.writeUInt32BE(h.l1Size, 36);
  b.writeBigUInt64BE(BigInt(h.l1TableOffset), 40);
  b.writeBigUInt64BE(BigInt(h.refcountTableOffset), 48);
  b.writeUInt32BE(h.refcountTableClusters, 56);
  b.writeUInt32BE(h.nbSnapshots, 60);
  b.writeBigUInt64BE(BigInt(h.snapshotsOffset), 64);
  b.writeBigUInt64BE(h.incompatibleFeatures, 72);
  b.writeBigUInt64BE(h.compatibleFeatures, 80);
  b.writeBigUInt64BE(h.autoclearFeatures, 88);
  b.writeUInt32BE(h.refcountOrder, 96);
  b.writeUInt32BE(HEADER_LENGTH, 100);
  b.writeUInt8(h.compressionType, 104);
  // bytes HEADER_LENGTH..+8: header extension type 0 (end), length 0
  return b;
}
