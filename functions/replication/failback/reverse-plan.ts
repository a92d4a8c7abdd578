/**
 * What `chooseReverse` needs about each disk of a reverse sync, read from the pools: the disk's
 * image format, whether CBT can list what the copy changed since the reverse disk's base (from the
 * previous reverse snapshot, else the copy's CBT baseline, to the new reverse snapshot: one CBT
 * log chain, docs/xapi.md "CBT and NBD"), and whether NBD on the DR pool answers (probed once, and
 * only when some disk could use it).
 */
import type { Xapi } from '../../xapi/index.js';
import { nbdObstacle } from '../cbt-mode.js';
import { detectFormat } from '../image-format.js';
import type { DiskRef } from '../inventory.js';
import { chooseReverse, type ReverseChoice, type ReverseFacts } from './reverse-mode.js';

export interface ReversePlan extends ReverseChoice {
  format: ReverseFacts['format'];
  /** The `vdi_from` of list_changed_blocks for a cbt delta. */
  cbtFrom?: DiskRef;
}

export async function planReverse(
  dest: Xapi,
  x: {
    /** The new reverse snapshot's disks. */
    disks: DiskRef[];
    /** The reverse disks hold a base's content (S's, or the previous sync's). */
    delta: boolean;
    /** Where CBT lists the changes from: the previous reverse snapshot, else the CBT baseline. */
    cbtFrom: { what: string; disks: DiskRef[] } | undefined;
    /** The disk (userdevice) partly sent over NBD by this run. */
    resuming?: string | undefined;
  },
): Promise<Map<string, ReversePlan>> {
  const facts: (ReverseFacts & { from?: DiskRef })[] = [];
  for (const d of x.disks) {
    const from = x.cbtFrom?.disks.find((b) => b.userdevice === d.userdevice);
    const cbt = !x.cbtFrom
      ? 'the failover turned no CBT on on the DR copy (it has no CBT baseline)'
      : !from
        ? `${x.cbtFrom.what} has no disk ${d.userdevice}`
        : !from.vdi.rec.cbt_enabled
          ? `CBT was off on the DR copy's disk when ${x.cbtFrom.what} was taken`
          : !d.vdi.rec.cbt_enabled
            ? "CBT is off on the DR copy's disk"
            : undefined;
    facts.push({
      userdevice: d.userdevice,
      format: (await detectFormat(dest, d.vdi.rec)).format,
      virtualSize: d.vdi.rec.virtual_size,
      delta: x.delta,
      cbt,
      nbd: 'NBD was not needed',
      resuming: x.resuming === d.userdevice,
      ...(from ? { from } : {}),
    });
  }
  const probe = facts.find((f) => (f.delta && !f.cbt) || f.format === 'qcow2');
  if (probe) {
    const vdi = x.disks.find((d) => d.userdevice === probe.userdevice)!.vdi.ref;
    const nbd = await nbdObstacle(dest, vdi);
    for (const f of facts) f.nbd = nbd ? `${nbd} (on the DR pool)` : undefined;
  }
  const out = new Map<string, ReversePlan>();
  for (const { from, ...f } of facts) {
    const choice = chooseReverse(f);
    out.set(f.userdevice, {
      ...choice,
      format: f.format,
      ...(choice.transfer === 'cbt-delta' && from ? { cbtFrom: from } : {}),
    });
  }
  return out;
}
