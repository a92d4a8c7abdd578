import { describe, expect, it } from 'vitest';
import { decideMode, type ModeFacts } from '../../../../functions/replication/rules/transfer-mode.js';

const noCbt = 'has no CBT (CBT was off on the disk when it was taken)';
const unrelated = 'has no CBT chain to the new snapshot';
const facts = (f: Partial<ModeFacts>): ModeFacts => ({
  userdevice: '0',
  transferMode: 'cbt',
  qcow2: false,
  obstacle: undefined,
  ...f,
});
const base = (unusable: string | undefined, dataDestroyed = false) => ({ base: { unusable, dataDestroyed } });

describe('transfer mode per disk', () => {
  // [case, facts, mode, goes full (the fullReason and the warning match), reason]
  const table: [string, Partial<ModeFacts>, 'vhd' | 'cbt', boolean, RegExp][] = [
    ['vhd job, VHD disk', { transferMode: 'vhd', ...base(noCbt) }, 'vhd', false, /^transferMode is vhd$/],
    ['cbt, usable, a delta', { ...base(undefined) }, 'cbt', false, /transferMode is cbt; CBT and NBD/],
    ['cbt, usable, a full', {}, 'cbt', false, /transferMode is cbt; CBT and NBD/],
    ['cbt, base without CBT', { ...base(noCbt) }, 'cbt', true, /base snapshot of disk 0 has no CBT/],
    ['cbt, broken chain', { ...base(unrelated) }, 'cbt', true, /no CBT chain to the new snapshot/],
    ['cbt, broken chain, base data destroyed', { ...base(unrelated, true) }, 'cbt', true, /no CBT chain/],
    [
      'auto, base without CBT: a vhd delta',
      { transferMode: 'auto', ...base(noCbt) },
      'vhd',
      false,
      /auto fell back to vhd for this delta: the base snapshot has no CBT/,
    ],
    [
      'auto, broken chain: a vhd delta',
      { transferMode: 'auto', ...base(unrelated) },
      'vhd',
      false,
      /auto fell back to vhd for this delta/,
    ],
    [
      'auto, broken chain, base data destroyed: a cbt full',
      { transferMode: 'auto', ...base(unrelated, true) },
      'cbt',
      true,
      /no CBT chain/,
    ],
    [
      'auto, usable',
      { transferMode: 'auto', ...base(undefined) },
      'cbt',
      false,
      /transferMode is auto; CBT and NBD/,
    ],
    [
      'auto, NBD not usable',
      { transferMode: 'auto', obstacle: 'NBD is not usable: x', ...base(noCbt) },
      'vhd',
      false,
      /^auto fell back to vhd: NBD is not usable/,
    ],
    [
      'qcow2 in a vhd job (checkFormats refuses it first), usable',
      { transferMode: 'vhd', qcow2: true, ...base(undefined) },
      'cbt',
      false,
      /qcow2, which only cbt mode carries/,
    ],
    [
      'qcow2 in a vhd job (checkFormats refuses it first), base without CBT',
      { transferMode: 'vhd', qcow2: true, ...base(noCbt) },
      'cbt',
      true,
      /has no CBT .*: sent in full over NBD \(the disk is qcow2/,
    ],
    [
      'qcow2 in an auto job, broken chain',
      { transferMode: 'auto', qcow2: true, ...base(unrelated) },
      'cbt',
      true,
      /no CBT chain .*qcow2/,
    ],
  ];
  it.each(table)('%s', (_, f, mode, full, reason) => {
    const choice = decideMode(facts(f));
    expect(choice.mode).toBe(mode);
    expect(choice.reason).toMatch(reason);
    if (full) {
      expect(choice.full).toMatch(
        /^the base snapshot of disk 0 .*: sent in full over NBD.*; the next run is a delta again$/,
      );
      expect(choice.warning).toBe(choice.full);
    } else {
      expect(choice.full).toBeUndefined();
      expect(choice.warning).toBeUndefined();
    }
  });

  // the new snapshot without CBT, or NBD unusable, still fail a cbt job and a qcow2 disk
  const refusals: [string, Partial<ModeFacts>, RegExp][] = [
    [
      'cbt, CBT off on the disk',
      { obstacle: 'CBT is not enabled on the disk', ...base(noCbt) },
      /^CBT_UNAVAILABLE: disk 0: CBT is not enabled/,
    ],
    [
      'cbt, NBD not usable',
      { obstacle: 'NBD is not usable: refused' },
      /^CBT_UNAVAILABLE: disk 0: NBD is not usable/,
    ],
    [
      'qcow2 in an auto job, NBD not usable',
      { transferMode: 'auto', qcow2: true, obstacle: 'NBD is not usable: x' },
      /disk 0 \(the disk is qcow2: only cbt mode carries it\): NBD/,
    ],
  ];
  it.each(refusals)('%s: CBT_UNAVAILABLE', (_, f, message) => {
    expect(() => decideMode(facts(f))).toThrow(
      expect.objectContaining({ code: 'CBT_UNAVAILABLE', message: expect.stringMatching(message) }),
    );
  });
});
