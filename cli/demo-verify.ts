import { findVmByUuid, vmDisks } from '../functions/replication/inventory.js';
import { listRecoveryPoints } from '../functions/replication/recovery-points.js';
import { findExportedBase } from '../functions/replication/snapshot.js';
import type { Xapi } from '../functions/xapi/index.js';
import type { SimPool } from '../sim/index.js';

/**
 * Checks a VM's newest recovery point against the source snapshot it was made from, disk by disk,
 * by content hash (the simulator's test API hashes what a disk holds).
 */
export async function verifyReplica(
  o: { source: Xapi; destination: Xapi; sourcePool: SimPool; destinationPool: SimPool },
  jobId: string,
  vmUuid: string,
): Promise<{ ok: boolean; detail: string }> {
  const vm = await findVmByUuid(o.source, vmUuid);
  const base = await findExportedBase(o.source, jobId, vm.rec);
  const [rp] = await listRecoveryPoints(o.destination, jobId, vmUuid);
  if (!base || !rp) return { ok: false, detail: 'no exported snapshot or no recovery point' };
  if (rp.rec.other_config['xcr:source-snapshot'] !== base.snapshot.rec.uuid) {
    return { ok: false, detail: 'the newest recovery point was not made from the exported snapshot' };
  }
  const replicaDisks = await vmDisks(o.destination, rp.rec);
  if (replicaDisks.length !== base.disks.length) return { ok: false, detail: 'disk count differs' };
  for (const disk of base.disks) {
    const copy = replicaDisks.find((d) => d.userdevice === disk.userdevice);
    const want = o.sourcePool.test.hashVdi(disk.vdi.rec.uuid);
    const got = copy && o.destinationPool.test.hashVdi(copy.vdi.rec.uuid);
    if (want !== got) return { ok: false, detail: `disk ${disk.userdevice} differs` };
  }
  return { ok: true, detail: `${base.disks.length} disk(s) identical` };
}
