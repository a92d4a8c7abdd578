import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLeaseStore } from '../../../functions/lease/dynamo.js';
import { leaseContract, ManualClock } from '../../support/lease-contract.js';
import { createLeaseTable, type LocalDynamo, startDynalite } from './dynalite.js';

const TABLE = 'xcr-leases';
let db: LocalDynamo;

beforeAll(async () => {
  db = await startDynalite();
  await createLeaseTable(db.client, TABLE);
});
afterAll(() => db?.close());

async function item(key: string) {
  const out = await db.client.send(
    new GetItemCommand({ TableName: TABLE, Key: { pk: { S: key } }, ConsistentRead: true }),
  );
  return out.Item;
}

describe('DynamoLeaseStore (real AWS SDK against dynalite on loopback)', () => {
  leaseContract((now) => new DynamoLeaseStore({ client: db.client, tableName: TABLE, now }), {
    propertyRuns: 15,
  });

  it('stores expiresAt as whole epoch seconds for DynamoDB TTL, rounded up', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0, 250));
    const store = new DynamoLeaseStore({ client: db.client, tableName: TABLE, now: clock.now });
    await store.acquire('ttl-shape', 'run-a', 1500);
    const expected = Math.ceil((clock.ms + 1500) / 1000);
    expect(await item('ttl-shape')).toEqual({
      pk: { S: 'ttl-shape' },
      owner: { S: 'run-a' },
      expiresAt: { N: String(expected) },
    });
    expect(await store.acquire('ttl-shape', 'run-b', 1500)).toEqual({
      acquired: false,
      holder: 'run-a',
      expiresAt: new Date(expected * 1000),
    });
    clock.ms = expected * 1000 - 1;
    expect((await store.acquire('ttl-shape', 'run-b', 1500)).acquired).toBe(false);
    clock.ms = expected * 1000;
    expect(await store.acquire('ttl-shape', 'run-b', 1500)).toEqual({ acquired: true });
  });

  it('deletes the item on release by the holder only', async () => {
    const store = new DynamoLeaseStore({ client: db.client, tableName: TABLE });
    await store.acquire('release-shape', 'run-a', 60_000);
    await store.release('release-shape', 'run-b');
    expect(await item('release-shape')).toMatchObject({ owner: { S: 'run-a' } });
    await store.release('release-shape', 'run-a');
    expect(await item('release-shape')).toBeUndefined();
  });

  it('surfaces errors other than a failed condition', async () => {
    const store = new DynamoLeaseStore({ client: db.client, tableName: 'no-such-table' });
    await expect(store.acquire('job', 'run-a', 1000)).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    await expect(store.release('job', 'run-a')).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});
