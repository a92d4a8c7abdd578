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

describe('clip (a failover message in MAX_MESSAGE_BYTES bytes of UTF-8)', () => {
  const bytes = (t: string) => Buffer.byteLength(t, 'utf8');
  it('the default is MAX_MESSAGE_BYTES, and a long message costs only its first bytes', () => {
    const got = clip('错'.repeat(1_000_000));
    // 332 characters of 3 bytes and the ellipsis: one more would be 1,002
    expect(bytes(got)).toBe(332 * 3 + 3);
    expect(MAX_MESSAGE_BYTES).toBe(1000);
    expect(got.endsWith('…')).toBe(true);
  });
});
