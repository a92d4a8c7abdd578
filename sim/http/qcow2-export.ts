/**
 * What `export_raw_vdi?format=qcow2` sends: XAPI runs qcow2-to-stdout over the attached device,
 * which writes the clusters holding data (any non-zero 64 KiB cluster), or with `base=` the
 * clusters whose bytes differ from the base's — a standalone image (no backing file) that, written
 * over the base's contents, gives the VDI's. Layout and bytes come from functions/qcow2.
 */
import { createQcow2Writer, type Qcow2Writer } from '../../functions/qcow2/index.js';
import { BLOCK_SIZE, type Disk } from '../disk.js';

const CLUSTER_BITS = 16;
const CLUSTER = 2 ** CLUSTER_BITS;
const PER_BLOCK = BLOCK_SIZE / CLUSTER;
const ZERO = Buffer.alloc(CLUSTER);

function clustersToSend(disk: Disk, base: Disk | undefined): number[] {
  const out: number[] = [];
  for (const i of base ? disk.diff(base) : disk.allocated()) {
    const mine = disk.blockData(i);
    const theirs = base?.blockData(i);
    for (let k = 0; k < PER_BLOCK && i * BLOCK_SIZE + k * CLUSTER < disk.size; k++) {
      const a = mine.subarray(k * CLUSTER, (k + 1) * CLUSTER);
      const b = theirs ? theirs.subarray(k * CLUSTER, (k + 1) * CLUSTER) : ZERO;
      if (!a.equals(b)) out.push(i * PER_BLOCK + k);
    }
  }
  return out;
}

export function qcow2Export(disk: Disk, base?: Disk): Qcow2Writer {
  return createQcow2Writer({
    virtualSize: disk.size,
    clusterBits: CLUSTER_BITS,
    clusters: clustersToSend(disk, base),
    // pinned: the socket may hold the buffer after the call, so the block is never written in place
    readCluster: (c) => {
      const k = c % PER_BLOCK;
      return disk.blockData(Math.floor(c / PER_BLOCK), true).subarray(k * CLUSTER, (k + 1) * CLUSTER);
    },
  });
}
