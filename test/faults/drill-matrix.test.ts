/**
 * The drill fault matrix (drill-scenarios.ts) as a test: every XAPI call of a drill fails, and the
 * drill process dies inside each drill step; nothing is left after the next run and drill, and the
 * recovery points are byte-identical.
 */
import { describe, expect, it } from 'vitest';
import { runDrillMatrix } from './drill-scenarios.js';

describe('drill fault matrix', () => {
  it('a failure of any drill call or a dying drill leaves nothing after the next run and drill, the points intact', async () => {
    const { calls, results } = await runDrillMatrix();
    for (const c of [
      'VM.clone',
      'VIF.create',
      'VIF.destroy',
      'VM.start',
      'VM.hard_shutdown',
      'VM.destroy',
      'VDI.destroy',
    ])
      expect(calls).toContain(c);
    expect(calls.length).toBeGreaterThan(10);
    expect(results.length).toBe(calls.length + 4);
    expect(results.filter((r) => !r.passed).map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
    expect(results.every((r) => r.recoveryPointsIntact && r.leakedObjects === 0)).toBe(true);
  }, 600_000);
});
