import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { RunStore } from '../../functions/runstore/port.js';

export type MakeRunStore = () => RunStore | Promise<RunStore>;

const uuids = (n: number, salt = 'a') =>
  Array.from({ length: n }, (_, i) => `${salt}${String(i).padStart(7, '0')}-4e5f-4a6b-8c7d-0123456789ab`);

/** The RunStore semantics every adapter must meet (file and DynamoDB run the same cases). */
export function runStoreContract(make: MakeRunStore): void {
  const runId = () => `run-${randomUUID()}`;

  describe('RunStore contract', () => {
    it('reads the work list back by index range, clipped at its end', async () => {
      const store = await make();
      const run = runId();
      const vms = uuids(57);
      await store.putWorkList(run, vms);
      expect(await store.readWorkList(run, 0, 25)).toEqual(vms.slice(0, 25));
      expect(await store.readWorkList(run, 25, 50)).toEqual(vms.slice(25, 50));
      expect(await store.readWorkList(run, 50, 75)).toEqual(vms.slice(50));
      expect(await store.readWorkList(run, 57, 100)).toEqual([]);
      expect(await store.readWorkList(run, 3, 3)).toEqual([]);
      expect(await store.readWorkList(runId(), 0, 10)).toEqual([]);
    });

    it('records results by index, reads them in index order, a later record of an index wins', async () => {
      const store = await make();
      const run = runId();
      await store.putWorkList(run, uuids(12));
      await store.putResult(run, 10, { vmUuid: 'x10', status: 'failed' });
      await store.putResult(run, 2, { vmUuid: 'x2', status: 'succeeded', bytes: 5 });
      await store.putResult(run, 10, { vmUuid: 'x10', status: 'succeeded' });
      await store.putResult(run, 11, { vmUuid: 'x11', nested: { list: [1, 2] } });
      expect(await store.readResults(run, 0, 12)).toEqual([
        { index: 2, record: { vmUuid: 'x2', status: 'succeeded', bytes: 5 } },
        { index: 10, record: { vmUuid: 'x10', status: 'succeeded' } },
        { index: 11, record: { vmUuid: 'x11', nested: { list: [1, 2] } } },
      ]);
      expect(await store.readResults(run, 3, 11)).toEqual([
        { index: 10, record: { vmUuid: 'x10', status: 'succeeded' } },
      ]);
      expect(await store.readResults(run, 0, 2)).toEqual([]);
    });

    it('keeps runs apart and deletes one run whole', async () => {
      const store = await make();
      const [a, b] = [runId(), runId()];
      await store.putWorkList(a, uuids(30, 'a'));
      await store.putWorkList(b, uuids(3, 'b'));
      for (let i = 0; i < 30; i++) await store.putResult(a, i, { i });
      await store.putResult(b, 1, { b: true });
      await store.deleteRun(a);
      expect(await store.readWorkList(a, 0, 30)).toEqual([]);
      expect(await store.readResults(a, 0, 30)).toEqual([]);
      expect(await store.readWorkList(b, 0, 3)).toEqual(uuids(3, 'b'));
      expect(await store.readResults(b, 0, 3)).toEqual([{ index: 1, record: { b: true } }]);
      await store.deleteRun(a);
    });

    it('refuses bad arguments with the field named', async () => {
      const store = await make();
      await expect(store.putWorkList('', ['x'])).rejects.toThrow(/runId must not be empty/);
      await expect(store.putWorkList(runId(), ['x', ''])).rejects.toThrow(/work item 1 is empty/);
      await expect(store.readWorkList(runId(), 5, 2)).rejects.toThrow(/bad index range \[5, 2\)/);
      await expect(store.putResult(runId(), -1, {})).rejects.toThrow(/index -1 is not an integer/);
      await expect(store.readResults(runId(), 0.5, 2)).rejects.toThrow(/bad index range/);
    });
  });
}
