/** How each disk of a failback's reverse sync travels (failback/reverse-mode.ts), by table. */
import { describe, expect, it } from 'vitest';
import { chooseReverse, type ReverseFacts } from '../../../functions/replication/failback/reverse-mode.js';

const GiB = 2 ** 30;
const base: ReverseFacts = {
  userdevice: '0',
  format: 'vhd',
  virtualSize: 32 * GiB,
  delta: true,
  cbt: undefined,
  nbd: undefined,
  resuming: false,
};
const NO_CBT = 'CBT is off on the DR copy’s disk';
const NO_NBD = 'NBD is not usable: refused (on the DR pool)';

describe('chooseReverse', () => {
  // [case, facts, transfer, new empty disk]
  const table: [string, Partial<ReverseFacts>, string, boolean][] = [
    ['vhd, CBT and NBD usable', {}, 'cbt-delta', false],
    ['qcow2, CBT and NBD usable', { format: 'qcow2' }, 'cbt-delta', false],
    [
      'qcow2 over 2040 GiB, CBT and NBD usable',
      { format: 'qcow2', virtualSize: 4096 * GiB },
      'cbt-delta',
      false,
    ],
    ['vhd without CBT', { cbt: NO_CBT }, 'vhd-delta', false],
    ['vhd without NBD', { nbd: NO_NBD }, 'vhd-delta', false],
    [
      'qcow2 without CBT, NBD usable: its clusters into a new disk',
      { format: 'qcow2', cbt: NO_CBT },
      'cbt-full',
      true,
    ],
    [
      'qcow2 without NBD: a full VHD export into a new disk',
      { format: 'qcow2', nbd: NO_NBD },
      'vhd-full',
      true,
    ],
    ['vhd, base gone', { delta: false, cbt: NO_CBT }, 'vhd-full', false],
    ['vhd, base gone, even with CBT and NBD', { delta: false }, 'vhd-full', false],
    ['qcow2, base gone, NBD usable', { format: 'qcow2', delta: false }, 'cbt-full', false],
    ['qcow2, base gone, no NBD', { format: 'qcow2', delta: false, nbd: NO_NBD }, 'vhd-full', false],
    ['resuming over NBD, still usable', { resuming: true }, 'cbt-delta', false],
  ];
  for (const [name, facts, transfer, fresh] of table) {
    it(name, () => {
      const c = chooseReverse({ ...base, ...facts });
      expect(c.transfer).toBe(transfer);
      expect(c.freshDisk).toBe(fresh);
      expect(c.reason).toMatch(/^disk 0/);
    });
  }

  it('says why a delta became a whole qcow2 disk, and only then', () => {
    expect(chooseReverse({ ...base, format: 'qcow2', cbt: NO_CBT }).warning).toBe(
      `disk 0 is qcow2, which has no VHD differencing export, and ${NO_CBT}: it is sent whole into a new disk (its allocated clusters over NBD)`,
    );
    expect(chooseReverse({ ...base, cbt: NO_CBT }).warning).toBeUndefined();
    expect(chooseReverse({ ...base, format: 'qcow2', delta: false }).warning).toBeUndefined();
    expect(chooseReverse({ ...base, cbt: NO_CBT }).reason).toContain(NO_CBT);
  });

  it('refuses a qcow2 disk over 2040 GiB that needs NBD when NBD is not usable', () => {
    for (const delta of [true, false])
      expect(() =>
        chooseReverse({ ...base, format: 'qcow2', virtualSize: 4096 * GiB, delta, nbd: NO_NBD, cbt: NO_CBT }),
      ).toThrow(/CBT_UNAVAILABLE|larger than VHD's 2040 GiB .*purpose nbd or insecure_nbd/);
  });

  it('refuses to go on another way with a disk partly sent over NBD', () => {
    expect(() => chooseReverse({ ...base, resuming: true, nbd: NO_NBD })).toThrow(
      /was being sent over NBD by this failback.*same run id/,
    );
  });
});
