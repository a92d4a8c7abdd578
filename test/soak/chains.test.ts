/** The short version of `npm run soak`: 40 cycles with GC stalls, every destination chain bounded. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('40 cycles at retention 3 keep every destination VHD chain within maxChainDepth, verified, nothing leaked', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'test/soak/main.ts', '--cycles', '40', '--chains', '--seed', '7'],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const figures = new Map(
    stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; value: number })
      .map((f) => [f.name, f.value]),
  );
  expect(figures.get('soak.leaked_objects')).toBe(0);
  expect(figures.get('soak.verified_recovery_points')).toBeGreaterThan(10);
  const deepest = figures.get('soak.deepest_destination_chain')!;
  expect(deepest).toBeGreaterThan(3);
  expect(deepest).toBeLessThanOrEqual(12);
}, 600_000);
