/**
 * Streams a qcow2 image from a disk's allocated clusters. Tables are made one cluster at a time
 * from the plan, data clusters are read one at a time as the consumer pulls: memory is the cluster
 * list plus one cluster, whatever the disk's size.
 */
import { encodeHeader } from './header.js';
import { planImage, type Qcow2Plan } from './layout.js';
import { DEFAULT_CLUSTER_BITS, OFLAG_COPIED, Qcow2FormatError, REFCOUNT_ORDER } from './types.js';

export interface Qcow2WriterOptions {
  virtualSize: number;
  clusterBits?: number;
  /** Guest cluster indices that hold data, ascending; every other cluster reads as zeros. */
  clusters: readonly number[];
  /** The bytes of guest cluster `index` (a short last cluster is padded with zeros). */
  readCluster: (index: number) => Uint8Array | Promise<Uint8Array>;
}

export interface Qcow2Writer {
  plan: Qcow2Plan;
  /** Exact length of the stream in bytes. */
  length: number;
  stream: AsyncGenerator<Buffer>;
}

export function createQcow2Writer(options: Qcow2WriterOptions): Qcow2Writer {
  const clusterBits = options.clusterBits ?? DEFAULT_CLUSTER_BITS;
  const plan = planImage(options.virtualSize, clusterBits, options.clusters);
  return { plan, length: plan.length, stream: emit(plan, options) };
}

async function* emit(plan: Qcow2Plan, o: Qcow2WriterOptions): AsyncGenerator<Buffer> {
  const cs = plan.clusterSize;
  const header = Buffer.alloc(cs);
  encodeHeader({
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: plan.clusterBits,
    virtualSize: plan.virtualSize,
    cryptMethod: 0,
    l1Size: plan.l1Size,
    l1TableOffset: plan.l1TableOffset,
    refcountTableOffset: plan.refcountTableOffset,
    refcountTableClusters: plan.refcountTableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: 0n,
    compatibleFeatures: 0n,
    autoclearFeatures: 0n,
    refcountOrder: REFCOUNT_ORDER,
    compressionType: 0,
  }).copy(header);
  yield header;

  const entries = cs / 8;
  for (let t = 0; t < plan.refcountTableClusters; t++) {
    const c = Buffer.alloc(cs);
    for (let i = 0; i < entries; i++) {
      const block = t * entries + i;
      if (block >= plan.refcountBlocks) break;
      c.writeBigUInt64BE(BigInt(plan.refcountBlockOffset + block * cs), i * 8);
    }
    yield c;
  }
  const perBlock = cs / 2; // 16-bit refcounts
  for (let b = 0; b < plan.refcountBlocks; b++) {
    const c = Buffer.alloc(cs);
    const n = Math.min(perBlock, plan.totalClusters - b * perBlock);
    for (let i = 0; i < n; i++) c.writeUInt16BE(1, i * 2);
    yield c;
  }

  let table = 0;
  for (let t = 0; t < plan.l1Clusters; t++) {
    const c = Buffer.alloc(cs);
    for (let i = 0; i < entries; i++) {
      const l1 = t * entries + i;
      if (plan.l2Tables[table] !== l1) continue;
      c.writeBigUInt64BE(BigInt(plan.l2TableOffset + table * cs) | OFLAG_COPIED, i * 8);
      table++;
    }
    yield c;
  }

  let k = 0;
  for (const l1 of plan.l2Tables) {
    const c = Buffer.alloc(cs);
    const first = l1 * entries;
    while (k < o.clusters.length && o.clusters[k]! < first + entries) {
      c.writeBigUInt64BE(BigInt(plan.dataOffset + k * cs) | OFLAG_COPIED, (o.clusters[k]! - first) * 8);
      k++;
    }
    yield c;
  }

  for (const index of o.clusters) {
    const data = await o.readCluster(index);
    if (data.length > cs)
      throw new Qcow2FormatError('BAD_ARGUMENT', `cluster ${index} is ${data.length} bytes, more than ${cs}`);
    if (data.length === cs) yield Buffer.from(data.buffer, data.byteOffset, data.length);
    else {
      const c = Buffer.alloc(cs);
      c.set(data);
      yield c;
    }
  }
}
