import { describe, expect, it } from 'vitest';
import { fitDecision } from '../../../functions/replication/cbt-mode.js';
import { fromCursor } from '../../../functions/replication/cbt-transfer.js';
import type { VdiRecord } from '../../../functions/xapi/index.js';

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
    expect(fitDecision(delta, 'cbt', meta)).toBe(delta);
    expect(fitDecision(delta, 'vhd', user)).toBe(delta);
    const full = fitDecision(delta, 'vhd', meta);
    expect(full.kind).toBe('full');
    expect(full.baseVdi).toBeUndefined();
    expect(full.fullReason).toMatch(/CBT metadata/);
  });
});
