import { describe, expect, it } from 'vitest';
import { type PlanInput, planTransfer } from '../../../functions/replication/rules/full-or-delta.js';

const GiB = 2 ** 30;

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    fullInterval: 0,
    disks: [
      { userdevice: '0', vdiUuid: 'new-0', virtualSize: 8 * GiB },
      { userdevice: '1', vdiUuid: 'new-1', virtualSize: 2 * GiB },
    ],
    base: {
      snapshotUuid: 'snap-1',
      chain: 2,
      disks: [
        { userdevice: '0', vdiUuid: 'base-0', virtualSize: 8 * GiB },
        { userdevice: '1', vdiUuid: 'base-1', virtualSize: 2 * GiB },
      ],
    },
    recoveryPoint: {
      uuid: 'rp-1',
      sourceSnapshot: 'snap-1',
      disks: [
        { userdevice: '0', vdiUuid: 'rp-0', virtualSize: 8 * GiB, sourceVdi: 'base-0' },
        { userdevice: '1', vdiUuid: 'rp-1d', virtualSize: 2 * GiB, sourceVdi: 'base-1' },
      ],
    },
    ...overrides,
  };
}

describe('planTransfer', () => {
  it('plans a delta per disk when both sides hold the same base', () => {
    const plan = planTransfer(input());
    expect(plan.disks).toEqual([
      { userdevice: '0', kind: 'delta', baseVdi: 'base-0', recoveryPointVdi: 'rp-0' },
      { userdevice: '1', kind: 'delta', baseVdi: 'base-1', recoveryPointVdi: 'rp-1d' },
    ]);
    expect(plan.chain).toBe(3);
    expect(plan.warnings).toEqual([]);
  });

  it('goes full on the first run', () => {
    const plan = planTransfer(input({ base: undefined, recoveryPoint: undefined }));
    expect(plan.disks.map((d) => d.kind)).toEqual(['full', 'full']);
    expect(plan.disks[0]!.fullReason).toBe('no exported base snapshot on the source');
    expect(plan.chain).toBe(0);
    expect(plan.warnings).toEqual([]);
  });

  it('warns and goes full when the base snapshot vanished but a recovery point exists', () => {
    const plan = planTransfer(input({ base: undefined }));
    expect(plan.disks.every((d) => d.kind === 'full')).toBe(true);
    expect(plan.warnings[0]).toMatch(/deleted by hand/);
  });

  it('never deltas onto a modified recovery point', () => {
    const rp = { ...input().recoveryPoint!, tampered: 'its start was unblocked' };
    const plan = planTransfer(input({ recoveryPoint: rp }));
    expect(plan.disks.every((d) => d.kind === 'full')).toBe(true);
    expect(plan.disks[0]!.fullReason).toMatch(/modified: its start was unblocked/);
    expect(plan.warnings[0]).toMatch(/not used as a delta base/);
  });

  it('goes full when the newest recovery point came from another snapshot', () => {
    const rp = { ...input().recoveryPoint!, sourceSnapshot: 'snap-0' };
    expect(planTransfer(input({ recoveryPoint: rp })).disks.every((d) => d.kind === 'full')).toBe(true);
  });

  it('forces a full when the full interval is reached', () => {
    expect(planTransfer(input({ fullInterval: 3 })).disks.every((d) => d.kind === 'full')).toBe(true);
    expect(planTransfer(input({ fullInterval: 4 })).disks.every((d) => d.kind === 'delta')).toBe(true);
  });

  it('copies a new disk or a resized disk in full and keeps the others delta', () => {
    const disks = [
      { userdevice: '0', vdiUuid: 'new-0', virtualSize: 10 * GiB },
      { userdevice: '1', vdiUuid: 'new-1', virtualSize: 2 * GiB },
      { userdevice: '2', vdiUuid: 'new-2', virtualSize: 1 * GiB },
    ];
    const plan = planTransfer(input({ disks }));
    expect(plan.disks.map((d) => [d.kind, d.fullReason])).toEqual([
      ['full', 'disk resized'],
      ['delta', undefined],
      ['full', 'new disk'],
    ]);
    expect(plan.chain).toBe(3);
  });

  it('plans nothing for a VM without disks', () => {
    expect(planTransfer(input({ disks: [] })).disks).toEqual([]);
  });
});
