import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileRunStore } from '../../../functions/runstore/file.js';
import { runStoreContract } from '../../support/runstore-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'xcr-runstore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('FileRunStore', () => {
  runStoreContract(() => new FileRunStore(join(dir, 'contract')));

  it('keeps each run under the store directory, whatever its id', async () => {
    const root = join(dir, 'names');
    const store = new FileRunStore(root);
    await store.putWorkList('../../escape', ['vm']);
    await store.putWorkList('..', ['vm']);
    expect(readdirSync(root).sort()).toEqual(['%2E%2E', '%2E%2E%2F..%2Fescape']);
    expect(await store.readWorkList('..', 0, 1)).toEqual(['vm']);
  });

  it('removes runs whose data outlived the TTL when the next run starts', async () => {
    let now = Date.UTC(2026, 0, 1);
    const root = join(dir, 'ttl');
    const store = new FileRunStore(root, { now: () => new Date(now), ttlMs: 1000 });
    await store.putWorkList('old', ['vm']);
    await store.putResult('old', 0, { status: 'succeeded' });
    now += 999;
    await store.putWorkList('recent', ['vm']);
    expect(await store.readWorkList('old', 0, 1)).toEqual(['vm']);
    now += 1;
    await store.putWorkList('new', ['vm']);
    expect(await store.readWorkList('old', 0, 1)).toEqual([]);
    expect(await store.readResults('old', 0, 1)).toEqual([]);
    expect(await store.readWorkList('recent', 0, 1)).toEqual(['vm']);
  });
});
