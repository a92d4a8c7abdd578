import { describe, expect, it } from 'vitest';
import { discoverCalls, runScenario, scenarios } from './scenarios.js';

const calls = await discoverCalls();
const all = scenarios(calls);

describe('fault matrix: a failure anywhere never harms the last recovery point nor leaks', () => {
  it('covers every XAPI call of a run on both sides', () => {
    expect(calls.source).toContain('VM.snapshot');
    expect(calls.destination).toContain('VDI.clone');
    expect(calls.source).toContain('VTPM.get_contents');
    expect(calls.destination).toEqual(
      expect.arrayContaining(['VTPM.create', 'VTPM.set_contents', 'VM.set_bios_strings', 'VBD.create']),
    );
    expect(all.length).toBeGreaterThanOrEqual(40);
  });

  it.each(all.map((s) => [s.name, s] as const))(
    '%s',
    async (_name, scenario) => {
      const result = await runScenario(scenario);
      expect(result.detail).toBe('');
      expect(result).toMatchObject({ passed: true, recoveryPointsIntact: true, leakedObjects: 0 });
      // The chain scenarios wait for the simulated GC (seconds idle); on a loaded 2-core machine they
      // have taken over a minute, which is slowness, not a hang.
    },
    180_000,
  );
});
