/**
 * Where each structure of a written image goes. The order is XAPI's (qcow2-to-stdout): header
 * cluster, refcount table, refcount blocks, L1 table, L2 tables, then the data clusters in guest
 * order — every table before the data it describes, so the image can be read front to back.
 */
import { geometry, Qcow2FormatError, REFCOUNT_ORDER } from './types.js';

export interface Qcow2Plan {
  virtualSize: number;
  clusterBits: number;
  clusterSize: number;
  l1Size: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  refcountBlockOffset: number;
  refcountBlocks: number;
  l1TableOffset: number;
  l1Clusters: number;
  l2TableOffset: number;
  /** L1 indices that have an L2 table, ascending (the k-th table sits at l2TableOffset + k clusters). */
  l2Tables: number[];
  dataOffset: number;
  /** Host clusters in the image (every one has refcount 1). */
  totalClusters: number;
  /** Bytes of the whole image. */
  length: number;
}

const ceil = (a: number, b: number): number => Math.ceil(a / b);

/** Checks `clusters` (guest cluster indices, ascending, unique, inside the disk) and lays the image out. */
export function planImage(virtualSize: number, clusterBits: number, clusters: readonly number[]): Qcow2Plan {
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0)
    throw new Qcow2FormatError('BAD_ARGUMENT', `virtualSize ${virtualSize} is not a byte count`);
  const g = geometry(virtualSize, clusterBits);
  const l2Tables: number[] = [];
  let prev = -1;
  for (const c of clusters) {
    if (!Number.isInteger(c) || c <= prev || c >= g.clusters)
      throw new Qcow2FormatError(
        'BAD_ARGUMENT',
        `cluster ${c} is not ascending or is outside the ${g.clusters} clusters of the disk`,
      );
    const t = Math.floor(c / g.l2Entries);
    if (l2Tables[l2Tables.length - 1] !== t) l2Tables.push(t);
    prev = c;
  }
  const l1Clusters = ceil(g.l1Size * 8, g.clusterSize);
  const perBlock = (g.clusterSize * 8) / 2 ** REFCOUNT_ORDER;
  const perTable = g.clusterSize / 8;
  const counted = 1 + l1Clusters + l2Tables.length + clusters.length;
  let blocks = ceil(counted, perBlock);
  let tables = ceil(blocks, perTable);
  // the refcount structures count themselves: grow until they cover every cluster, theirs included
  for (;;) {
    const need = ceil(counted + blocks + tables, perBlock);
    if (need <= blocks) break;
    blocks = need;
    tables = ceil(blocks, perTable);
  }
  const cs = g.clusterSize;
  const refcountTableOffset = cs;
  const refcountBlockOffset = refcountTableOffset + tables * cs;
  const l1TableOffset = refcountBlockOffset + blocks * cs;
  const l2TableOffset = l1TableOffset + l1Clusters * cs;
  const dataOffset = l2TableOffset + l2Tables.length * cs;
  const totalClusters = counted + blocks + tables;
  return {
    virtualSize,
    clusterBits,
    clusterSize: cs,
    l1Size: g.l1Size,
    refcountTableOffset,
    refcountTableClusters: tables,
    refcountBlockOffset,
    refcountBlocks: blocks,
    l1TableOffset: l1Clusters ? l1TableOffset : 0,
    l1Clusters,
    l2TableOffset,
    l2Tables,
    dataOffset,
    totalClusters,
    length: totalClusters * cs,
  };
}
