/**
 * The short chain soak of npm test (`npm run soak` is the 500-cycle one): the soak's cycles with a
 * low maxChainDepth, so the destination chains reach the bound within a few cycles and further deltas
 * take the wait-then-copy path; every chain within the bound after every cycle, every recovery point
 * verified, nothing leaked.
 */
import { expect, it } from 'vitest';
import { runSoak } from './core.js';

it('6 cycles with faults keep every destination VHD chain within maxChainDepth 3, verified, nothing leaked', async () => {
  const r = await runSoak({ cycles: 6, seed: 7, chains: true, maxChainDepth: 3 });
  expect(r.chainBound).toBe(3);
  expect(r.deepest).toBe(3);
  expect(r.leaked).toBe(0);
  expect(r.verified).toBe(r.succeeded);
  expect(r.succeeded).toBeGreaterThanOrEqual(4);
}, 300_000);
