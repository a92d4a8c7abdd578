import {
  BatchWriteItemCommand,
  CreateTableCommand,
  type DynamoDBClient,
  QueryCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoRunStore } from '../../../functions/runstore/dynamo.js';
import { runStoreContract } from '../../support/runstore-contract.js';
import { type LocalDynamo, startDynalite } from '../lease/dynalite.js';

const TABLE = 'xcr-runs';
let db: LocalDynamo;

/** The run table as the stack defines it: partition key `runId` (S), sort key `sk` (S). */
async function createRunTable(client: DynamoDBClient): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: TABLE,
      AttributeDefinitions: [
        { AttributeName: 'runId', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'runId', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}

beforeAll(async () => {
  db = await startDynalite();
  await createRunTable(db.client);
});
afterAll(() => db?.close());

describe('DynamoRunStore (real AWS SDK against dynalite on loopback)', () => {
  // Pages of 7 items: every range read and the delete cross several Query pages.
  runStoreContract(() => new DynamoRunStore({ client: db.client, tableName: TABLE, pageSize: 7 }));

  it('writes one item per VM with the TTL attribute in epoch seconds', async () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0, 250);
    const store = new DynamoRunStore({
      client: db.client,
      tableName: TABLE,
      now: () => new Date(now),
      ttlMs: 1500,
    });
    await store.putWorkList('shape', ['vm-a']);
    await store.putResult('shape', 0, { status: 'succeeded' });
    const out = await db.client.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: 'runId = :r',
        ExpressionAttributeValues: { ':r': { S: 'shape' } },
      }),
    );
    const expiresAt = { N: String(Math.ceil((now + 1500) / 1000)) };
    expect(out.Items).toEqual([
      { runId: { S: 'shape' }, sk: { S: 'item#0000000' }, vm: { S: 'vm-a' }, expiresAt },
      {
        runId: { S: 'shape' },
        sk: { S: 'result#0000000' },
        data: { S: '{"status":"succeeded"}' },
        expiresAt,
      },
    ]);
  });

  it('sends the unprocessed items of a BatchWriteItem again until all are written', async () => {
    let calls = 0;
    const throttling = {
      send: async (command: unknown) => {
        if (command instanceof BatchWriteItemCommand && calls++ % 2 === 0) {
          // DynamoDB throttled: it wrote the first request and hands back the rest.
          const [first, ...rest] = command.input.RequestItems![TABLE]!;
          await db.client.send(new BatchWriteItemCommand({ RequestItems: { [TABLE]: [first!] } }));
          return { UnprocessedItems: rest.length ? { [TABLE]: rest } : {} };
        }
        return db.client.send(command as never);
      },
    };
    const store = new DynamoRunStore({ client: throttling, tableName: TABLE, retryBaseMs: 0 });
    const vms = Array.from({ length: 60 }, (_, i) => `vm-${i}`);
    await store.putWorkList('throttled', vms);
    expect(calls).toBeGreaterThan(Math.ceil(60 / 25));
    expect(await store.readWorkList('throttled', 0, 60)).toEqual(vms);
  });

  it('gives up, naming the table and the count, when DynamoDB never takes the writes', async () => {
    const never = {
      send: async (command: unknown) => {
        if (command instanceof BatchWriteItemCommand) return { UnprocessedItems: command.input.RequestItems };
        return db.client.send(command as never);
      },
    };
    const store = new DynamoRunStore({ client: never, tableName: TABLE, retryBaseMs: 0 });
    await expect(store.putWorkList('never', ['a', 'b'])).rejects.toMatchObject({
      name: 'RunStoreWriteError',
      message: expect.stringMatching(/left 2 writes to xcr-runs unprocessed after 8 attempts/),
    });
  });
});
