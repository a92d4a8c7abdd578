import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LeaseResult, LeaseStore } from '../../functions/lease/port.js';

/** A clock the test moves by hand; starts on a whole second so second-granular stores are exact. */
export class ManualClock {
  constructor(public ms = Date.UTC(2026, 0, 1, 12, 0, 0)) {}
  readonly now = (): Date => new Date(this.ms);
  advance(ms: number): void {
    this.ms += ms;
  }
}

export type MakeStore = (now: () => Date) => LeaseStore | Promise<LeaseStore>;

const SEC = 1000;
const TTL = 60 * SEC;

function key(): string {
  return `job:${randomUUID()}`;
}

/**
 * The LeaseStore semantics every implementation must meet. Clock steps and TTLs are whole
 * seconds so a store that keeps expiry in seconds (DynamoDB TTL) is held to the exact answers.
 */
export function leaseContract(makeStore: MakeStore, o: { propertyRuns: number }): void {
  async function setup(): Promise<{ store: LeaseStore; clock: ManualClock; k: string }> {
    const clock = new ManualClock();
    return { store: await makeStore(clock.now), clock, k: key() };
  }

  describe('LeaseStore contract', () => {
    it('gives a free key to the first owner and reports the holder to others', async () => {
      const { store, clock, k } = await setup();
      expect(await store.acquire(k, 'run-a', TTL)).toEqual({ acquired: true });
      expect(await store.acquire(k, 'run-b', TTL)).toMatchObject({
        acquired: false,
        holder: 'run-a',
        expiresAt: new Date(clock.ms + TTL),
      });
    });

    it('renews for the holder, idempotently, extending the expiry', async () => {
      const { store, clock, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      clock.advance(50 * SEC);
      expect(await store.acquire(k, 'run-a', TTL)).toEqual({ acquired: true });
      expect(await store.acquire(k, 'run-a', TTL)).toEqual({ acquired: true });
      clock.advance(50 * SEC); // past the first expiry, inside the renewed one
      expect(await store.acquire(k, 'run-b', TTL)).toMatchObject({
        acquired: false,
        holder: 'run-a',
        expiresAt: new Date(clock.ms - 50 * SEC + TTL),
      });
    });

    it('holds until the expiry instant, then anyone can take it over', async () => {
      const { store, clock, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      clock.advance(TTL - 1);
      expect((await store.acquire(k, 'run-b', TTL)).acquired).toBe(false);
      clock.advance(1);
      expect(await store.acquire(k, 'run-b', TTL)).toEqual({ acquired: true });
      expect(await store.acquire(k, 'run-a', TTL)).toMatchObject({
        acquired: false,
        holder: 'run-b',
        expiresAt: new Date(clock.ms + TTL),
      });
    });

    it('lets the former holder retake its own expired lease when nobody else did', async () => {
      const { store, clock, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      clock.advance(2 * TTL);
      expect(await store.acquire(k, 'run-a', TTL)).toEqual({ acquired: true });
      expect(await store.acquire(k, 'run-b', TTL)).toMatchObject({ acquired: false, holder: 'run-a' });
    });

    it('ignores a release by a non-holder and frees the key on release by the holder', async () => {
      const { store, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      expect(await store.release(k, 'run-b')).toBe(false);
      expect(await store.acquire(k, 'run-b', TTL)).toMatchObject({ acquired: false, holder: 'run-a' });
      expect(await store.release(k, 'run-a')).toBe(true);
      // at-least-once delivery: a second release is a no-op, and says so
      expect(await store.release(k, 'run-a')).toBe(false);
      expect(await store.acquire(k, 'run-b', TTL)).toEqual({ acquired: true });
    });

    it('releases its own expired lease while nobody took it over (an execution-ended cleanup)', async () => {
      const { store, clock, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      clock.advance(2 * TTL);
      expect(await store.release(k, 'run-a')).toBe(true);
      expect(await store.acquire(k, 'run-b', TTL)).toEqual({ acquired: true });
    });

    it('does not let a late release from an expired holder free the new holder', async () => {
      const { store, clock, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      clock.advance(TTL);
      await store.acquire(k, 'run-b', TTL);
      expect(await store.release(k, 'run-a')).toBe(false);
      expect(await store.acquire(k, 'run-c', TTL)).toMatchObject({ acquired: false, holder: 'run-b' });
    });

    it('releases an unknown key without error and keeps keys independent', async () => {
      const { store, k } = await setup();
      expect(await store.release(k, 'run-a')).toBe(false);
      const other = key();
      expect(await store.acquire(k, 'run-a', TTL)).toEqual({ acquired: true });
      expect(await store.acquire(other, 'run-b', TTL)).toEqual({ acquired: true });
    });

    it('rejects empty keys or owners and non-positive TTLs', async () => {
      const { store, k } = await setup();
      await expect(store.acquire('', 'run-a', TTL)).rejects.toThrow(RangeError);
      await expect(store.acquire(k, '', TTL)).rejects.toThrow(RangeError);
      await expect(store.acquire(k, 'run-a', 0)).rejects.toThrow(RangeError);
      await expect(store.acquire(k, 'run-a', Number.NaN)).rejects.toThrow(RangeError);
      await expect(store.release(k, '')).rejects.toThrow(RangeError);
    });

    it('lets exactly one of many concurrent acquirers win, and the others see it', async () => {
      const { store, k } = await setup();
      const owners = Array.from({ length: 24 }, (_, i) => `run-${i}`);
      const results = await Promise.all(owners.map((w) => store.acquire(k, w, TTL)));
      expectOneWinner(owners, results);
    });

    it('lets exactly one of many concurrent acquirers take over an expired lease', async () => {
      const { store, clock, k } = await setup();
      await store.acquire(k, 'old', TTL);
      clock.advance(TTL + SEC);
      const owners = Array.from({ length: 24 }, (_, i) => `run-${i}`);
      const results = await Promise.all(owners.map((w) => store.acquire(k, w, TTL)));
      expectOneWinner(owners, results);
    });

    it('keeps the lease with its holder when renewals race with contenders', async () => {
      const { store, k } = await setup();
      await store.acquire(k, 'run-a', TTL);
      const calls = Array.from({ length: 24 }, (_, i) => (i % 2 ? 'run-a' : `run-${i}`));
      const results = await Promise.all(calls.map((w) => store.acquire(k, w, TTL)));
      results.forEach((r, i) => {
        expect(r).toEqual(
          calls[i] === 'run-a' ? { acquired: true } : expect.objectContaining({ holder: 'run-a' }),
        );
      });
    });

    it('matches a reference model over random operation sequences', async () => {
      const op = fc.oneof(
        fc.record({
          kind: fc.constant('acquire' as const),
          k: fc.nat(1),
          owner: fc.constantFrom('a', 'b', 'c'),
          ttlSec: fc.integer({ min: 1, max: 5 }),
        }),
        fc.record({
          kind: fc.constant('release' as const),
          k: fc.nat(1),
          owner: fc.constantFrom('a', 'b', 'c'),
        }),
        fc.record({ kind: fc.constant('advance' as const), sec: fc.integer({ min: 0, max: 4 }) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
          const { store, clock } = await setup();
          const keys = [key(), key()];
          const model = new Map<string, { owner: string; expiresAtMs: number }>();
          for (const step of ops) {
            if (step.kind === 'advance') {
              clock.advance(step.sec * SEC);
              continue;
            }
            const k = keys[step.k]!;
            const held = model.get(k);
            const live = held && held.expiresAtMs > clock.ms ? held : undefined;
            if (step.kind === 'release') {
              expect(await store.release(k, step.owner)).toBe(held?.owner === step.owner);
              if (held?.owner === step.owner) model.delete(k);
              continue;
            }
            const got = await store.acquire(k, step.owner, step.ttlSec * SEC);
            if (live && live.owner !== step.owner) {
              expect(got).toMatchObject({
                acquired: false,
                holder: live.owner,
                expiresAt: new Date(live.expiresAtMs),
              });
            } else {
              expect(got).toEqual({ acquired: true });
              model.set(k, { owner: step.owner, expiresAtMs: clock.ms + step.ttlSec * SEC });
            }
          }
        }),
        { numRuns: o.propertyRuns },
      );
    });
  });
}

function expectOneWinner(owners: string[], results: LeaseResult[]): void {
  const winners = owners.filter((_, i) => results[i]?.acquired);
  expect(winners).toHaveLength(1);
  for (const r of results) {
    if (!r.acquired) expect(r.holder).toBe(winners[0]);
  }
}
