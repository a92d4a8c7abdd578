import { describe, expect, it } from 'vitest';
import { clipUtf8 } from '../../../functions/replication/clip.js';

describe('clipUtf8 (text in at most max bytes of UTF-8, the ellipsis included)', () => {
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
    const got = clipUtf8(s, max);
    expect(got).toBe(want);
    expect(bytes(got)).toBeLessThanOrEqual(max);
    expect(valid(got)).toBe(true);
  });
});
