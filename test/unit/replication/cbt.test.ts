import { describe, expect, it } from 'vitest';
import { fitDecision, isUnrelatedCbt } from '../../../functions/replication/cbt-mode.js';
import { fromCursor } from '../../../functions/replication/cbt-transfer.js';
import { type VdiRecord, XapiError } from '../../../functions/xapi/index.js';

describe('cbt cursor', () => {
  const extents = [
    { offset: 0, length: 65536 },
    { offset: 4 * 65536, length: 3 * 65536 },
    { offset: 100 * 65536, length: 65536 },
  ];
  it('keeps the extents at or after the cursor and cuts the one it falls into', () => {
    expect(fromCursor(extents, 0)).toEqual(extents);
    expect(fromCursor(extents, 65536)).toEqual(extents.slice(1));
    expect(fromCursor(extents, 5 * 65536)).toEqual([
      { offset: 5 * 65536, length: 2 * 65536 },
      { offset: 100 * 65536, length: 65536 },
    ]);
    expect(fromCursor(extents, 101 * 65536)).toEqual([]);
  });
});

describe('mode and base', () => {
  const delta = { userdevice: '0', kind: 'delta' as const, baseVdi: 'b', recoveryPointVdi: 'r' };
  const meta = { type: 'cbt_metadata' } as VdiRecord;
  const user = { type: 'user' } as VdiRecord;
  it('a base reduced to CBT metadata forces a full in vhd mode only', () => {
    expect(fitDecision(delta, { mode: 'cbt' }, meta)).toBe(delta);
    expect(fitDecision(delta, { mode: 'vhd' }, user)).toBe(delta);
    const full = fitDecision(delta, { mode: 'vhd' }, meta);
    expect(full.kind).toBe('full');
    expect(full.baseVdi).toBeUndefined();
    expect(full.fullReason).toMatch(/CBT metadata/);
  });
  it('a base CBT cannot diff from turns the delta into a full with the reason chooseMode gave', () => {
    const full = fitDecision(delta, { mode: 'cbt', full: 'the base snapshot of disk 0 has no CBT' }, user);
    expect(full).toEqual({
      userdevice: '0',
      kind: 'full',
      fullReason: 'the base snapshot of disk 0 has no CBT',
    });
    const planned = { userdevice: '0', kind: 'full' as const, fullReason: 'full interval reached' };
    expect(fitDecision(planned, { mode: 'cbt', full: 'x' }, undefined)).toBe(planned);
  });
});

describe('a refused VDI.list_changed_blocks', () => {
  const sm = (reason: string) =>
    new XapiError(
      'SR_BACKEND_FAILURE_460',
      ['', `Failed to calculate changed blocks for given VDIs. [opterr=${reason}]`, ''],
      'VDI.list_changed_blocks',
    );
  it.each([
    ['SM: no common CBT log chain', sm('Source and target VDI are unrelated'), true],
    ['SM: the same VDI twice', sm('Source and target VDI are same'), false],
    [
      'SM: inconsistent bitmaps (another code)',
      new XapiError('SR_BACKEND_FAILURE_459', ['', 'x', 'Inconsistent bitmaps'], 'm'),
      false,
    ],
    [
      'the new snapshot attached',
      new XapiError('VDI_IN_USE', ['OpaqueRef:x', 'list_changed_blocks'], 'm'),
      false,
    ],
    ['permission', new XapiError('RBAC_PERMISSION_DENIED', ['VDI.list_changed_blocks', 'no'], 'm'), false],
    ['a transport failure', new Error('socket hang up'), false],
  ])('%s: a usable chain is missing? %s', (_, err, unrelated) => {
    expect(isUnrelatedCbt(err)).toBe(unrelated);
  });
});
