/** The failover contract's bounded lists: what a payload carries of a list that grows with what a run finds. */
import { describe, expect, it } from 'vitest';
import {
  clip,
  failoverReport,
  type Listed,
  listed,
  MAX_LISTED,
  MAX_MESSAGE_BYTES,
  NOTHING_LISTED,
} from '../../../functions/replication/failover/contract.js';

const names = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `VDI ${from + i}`);

describe('listed', () => {
  it.each([
    { what: 'nothing', more: [], prior: NOTHING_LISTED, want: { count: 0, items: [] } },
    { what: 'a few', more: names(3), prior: NOTHING_LISTED, want: { count: 3, items: names(3) } },
    {
      what: 'exactly the bound',
      more: names(MAX_LISTED),
      prior: undefined,
      want: { count: MAX_LISTED, items: names(MAX_LISTED) },
    },
    {
      what: 'many',
      more: names(10_000),
      prior: undefined,
      want: { count: 10_000, items: names(MAX_LISTED) },
    },
    {
      what: 'more after a few',
      more: names(30, 5),
      prior: { count: 5, items: names(5) },
      want: { count: 35, items: names(MAX_LISTED) },
    },
    {
      what: 'more after a full list',
      more: names(3, 100),
      prior: { count: 100, items: names(MAX_LISTED) },
      want: { count: 103, items: names(MAX_LISTED) },
    },
  ] as { what: string; more: string[]; prior: Listed | undefined; want: Listed }[])(
    '$what',
    ({ more, prior, want }) => {
      expect(listed(more, prior)).toEqual(want);
    },
  );

  it('a report whose list is longer than the bound is refused by the contract', () => {
    const report = { jobId: 'web', run: 'fo-1', planned: false, vms: [] };
    expect(failoverReport.safeParse({ ...report, removed: listed(names(500)) }).success).toBe(true);
    expect(
      failoverReport.safeParse({ ...report, removed: { count: 500, items: names(MAX_LISTED + 1) } }).success,
    ).toBe(false);
    expect(failoverReport.safeParse({ ...report, removed: names(3) }).success).toBe(false);
  });
});

describe('clip (a message in at most MAX_MESSAGE_BYTES bytes of UTF-8, the ellipsis included)', () => {
  const bytes = (t: string) => Buffer.byteLength(t, 'utf8');
  /** Valid UTF-8: decoding the encoding gives the text back (a split character would not). */
  const valid = (t: string) => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(t, 'utf8')) === t;
  it.each([
    { what: 'short ASCII', s: 'VDI_IO_ERROR', max: 1000, want: 'VDI_IO_ERROR' },
    { what: 'ASCII of exactly the limit', s: 'a'.repeat(1000), max: 1000, want: 'a'.repeat(1000) },
    { what: 'ASCII one over', s: 'a'.repeat(1001), max: 1000, want: `${'a'.repeat(997)}…` },
    // 3 bytes each: 333 of them are 999 bytes, so 332 and the ellipsis (999 bytes)
    { what: 'CJK', s: '磁盘错误'.repeat(100), max: 1000, want: `${'磁盘错误'.repeat(83)}…` },
    { what: 'CJK that fits', s: '磁'.repeat(333), max: 1000, want: '磁'.repeat(333) },
    // 4 bytes and 2 UTF-16 units each: never split into a lone surrogate
    { what: 'emoji', s: '💾'.repeat(300), max: 1000, want: `${'💾'.repeat(249)}…` },
    { what: 'emoji after one ASCII byte', s: `x${'💾'.repeat(300)}`, max: 10, want: 'x💾…' },
    { what: 'two-byte letters', s: 'é'.repeat(600), max: 1000, want: `${'é'.repeat(498)}…` },
    { what: 'mixed at a small limit', s: 'ab磁💾c', max: 8, want: 'ab磁…' },
    { what: 'mixed one byte lower', s: 'ab磁💾c', max: 7, want: 'ab…' },
    { what: 'mixed that fits', s: 'ab磁💾c', max: 10, want: 'ab磁💾c' },
    { what: 'nothing', s: '', max: 3, want: '' },
  ])('$what', ({ s, max, want }) => {
    const got = clip(s, max);
    expect(got).toBe(want);
    expect(bytes(got)).toBeLessThanOrEqual(max);
    expect(valid(got)).toBe(true);
  });

  it('the default is MAX_MESSAGE_BYTES, and a long message costs only its first bytes', () => {
    const got = clip('错'.repeat(1_000_000));
    // 332 characters of 3 bytes and the ellipsis: one more would be 1,002
    expect(bytes(got)).toBe(332 * 3 + 3);
    expect(MAX_MESSAGE_BYTES).toBe(1000);
    expect(got.endsWith('…')).toBe(true);
  });
});
