import type { TransferKind } from '../contract.js';

/**
 * Deciding full vs delta per disk. Pure: the inputs are what snapshot-previous found on both
 * sides. A delta needs the same base on both sides: the newest exported source snapshot, and a
 * recovery point made from exactly that snapshot, untouched since.
 */
export interface PlanDisk {
  userdevice: string;
  vdiUuid: string;
  virtualSize: number;
}

export interface PlanBase {
  snapshotUuid: string;
  /** Deltas since the last full (0 = the base itself was a full). */
  chain: number;
  disks: PlanDisk[];
}

export interface PlanRecoveryPoint {
  uuid: string;
  sourceSnapshot: string;
  /** Why it may not serve as a base (started, unblocked, disks swapped); undefined = intact. */
  tampered?: string;
  /** Its disks, with the source snapshot VDI each one was copied from. */
  disks: (PlanDisk & { sourceVdi: string })[];
}

export interface PlanInput {
  fullInterval: number;
  disks: PlanDisk[];
  base?: PlanBase;
  recoveryPoint?: PlanRecoveryPoint;
}

export interface DiskDecision {
  userdevice: string;
  kind: TransferKind;
  /** Source base snapshot VDI (delta only). */
  baseVdi?: string;
  /** Recovery-point VDI to clone as the writable target (delta only). */
  recoveryPointVdi?: string;
  fullReason?: string;
}

export interface Plan {
  disks: DiskDecision[];
  /** Chain length the new recovery point will have. */
  chain: number;
  warnings: string[];
}

function wholeVmReason(input: PlanInput, warnings: string[]): string | undefined {
  const { base, recoveryPoint: rp } = input;
  if (!base) {
    if (rp) warnings.push('no exported base snapshot on the source (deleted by hand?): full copy');
    return 'no exported base snapshot on the source';
  }
  if (!rp) return 'no recovery point on the destination';
  if (rp.sourceSnapshot !== base.snapshotUuid) {
    warnings.push(
      `newest recovery point ${rp.uuid} was not made from base snapshot ${base.snapshotUuid}: full copy`,
    );
    return 'the newest recovery point does not match the base snapshot';
  }
  if (rp.tampered) {
    warnings.push(`recovery point ${rp.uuid} was modified (${rp.tampered}); it is not used as a delta base`);
    return `the newest recovery point was modified: ${rp.tampered}`;
  }
  if (input.fullInterval > 0 && base.chain + 1 >= input.fullInterval) return 'full interval reached';
  return undefined;
}

export function planTransfer(input: PlanInput): Plan {
  const warnings: string[] = [];
  const vmReason = wholeVmReason(input, warnings);
  const disks = input.disks.map((disk): DiskDecision => {
    const full = (fullReason: string): DiskDecision => ({
      userdevice: disk.userdevice,
      kind: 'full',
      fullReason,
    });
    if (vmReason) return full(vmReason);
    const baseDisk = input.base!.disks.find((d) => d.userdevice === disk.userdevice);
    if (!baseDisk) return full('new disk');
    if (baseDisk.virtualSize !== disk.virtualSize) return full('disk resized');
    const rpDisk = input.recoveryPoint!.disks.find((d) => d.userdevice === disk.userdevice);
    if (!rpDisk || rpDisk.sourceVdi !== baseDisk.vdiUuid || rpDisk.virtualSize !== disk.virtualSize) {
      return full('no replica of this disk in the recovery point');
    }
    return {
      userdevice: disk.userdevice,
      kind: 'delta',
      baseVdi: baseDisk.vdiUuid,
      recoveryPointVdi: rpDisk.vdiUuid,
    };
  });
  const anyDelta = disks.some((d) => d.kind === 'delta');
  return { disks, chain: anyDelta ? input.base!.chain + 1 : 0, warnings };
}
