/** qcow2 constants, the header's shape and the typed format error (QEMU's qcow2 spec; integers big-endian). */

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** 64 KiB: QEMU's default, and what XAPI's qcow2 exporter (qcow2-to-stdout) writes. */
export const DEFAULT_CLUSTER_BITS = 16;
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** v3 header length with the compression-type byte, padded to 8 (as QEMU ≥ 9 writes it). */
export const HEADER_LENGTH = 112;
/** 16-bit refcounts (refcount_order 4), QEMU's default. */
export const REFCOUNT_ORDER = 4;

/** L1/L2 entry bits. */
export const OFLAG_COPIED = 1n << 63n;
export const OFLAG_COMPRESSED = 1n << 62n;
/** L2 (standard clusters, v3): the cluster reads as zeros. */
export const OFLAG_ZERO = 1n;
/** Host offset bits 9–55 of an L1/L2 entry. */
export const OFFSET_MASK = 0x00fffffffffffe00n;

/** Incompatible feature bits. */
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_DATA_FILE = 1n << 2n;
export const INCOMPAT_COMPRESSION = 1n << 3n;
export const INCOMPAT_EXTL2 = 1n << 4n;

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  virtualSize: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
}

/** A run of guest bytes the image holds: data clusters, or clusters flagged as reading zeros. */
export interface Qcow2Extent {
  offset: number;
  length: number;
  /** true: the L2 entry says "reads as zeros" (no data cluster in the image) */
  zero?: boolean;
}

export type Qcow2ErrorCode =
  | 'BAD_MAGIC'
  | 'UNSUPPORTED_VERSION'
  | 'BAD_HEADER'
  | 'UNSUPPORTED_FEATURE'
  | 'BAD_TABLE'
  | 'NOT_STREAMABLE'
  | 'TRUNCATED'
  | 'BAD_ARGUMENT';

export class Qcow2FormatError extends Error {
  override name = 'Qcow2FormatError';
  constructor(
    readonly code: Qcow2ErrorCode,
    message: string,
    /** stream offset where the problem was found */
    readonly offset?: number,
  ) {
    super(offset === undefined ? `qcow2 ${code}: ${message}` : `qcow2 ${code} at byte ${offset}: ${message}`);
  }
}

/** How many guest clusters a disk of `virtualSize` has, and how many L1 entries cover them. */
export function geometry(
  virtualSize: number,
  clusterBits: number,
): {
  clusterSize: number;
  clusters: number;
  l2Entries: number;
  l1Size: number;
} {
  const clusterSize = 2 ** clusterBits;
  const clusters = Math.ceil(virtualSize / clusterSize);
  const l2Entries = clusterSize / 8;
  return { clusterSize, clusters, l2Entries, l1Size: Math.ceil(clusters / l2Entries) };
}
