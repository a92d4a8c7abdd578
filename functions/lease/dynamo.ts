import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { checkLeaseArgs, LeaseContentionError } from './errors.js';
import type { LeaseResult, LeaseStore } from './port.js';

export interface DynamoLeaseStoreOptions {
  client: DynamoDBClient;
  /** Table with partition key `pk` (S); `expiresAt` should be its TTL attribute. */
  tableName: string;
  now?: () => Date;
}

// `owner` is a DynamoDB reserved word, so every expression goes through attribute names.
const NAMES = { '#pk': 'pk', '#owner': 'owner', '#exp': 'expiresAt' };
const MAX_ATTEMPTS = 5;

/**
 * Lease in DynamoDB: one item per key, taken with a single conditional PutItem.
 *
 * `expiresAt` is in whole epoch seconds because DynamoDB TTL needs that; it is rounded up, so a
 * lease lasts at least `ttlMs` (at most one second more). TTL deletion is lazy (up to days), so
 * the write condition compares the expiry itself; a lease counts as expired from `expiresAt` on.
 */
export class DynamoLeaseStore implements LeaseStore {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly now: () => Date;

  constructor(o: DynamoLeaseStoreOptions) {
    this.client = o.client;
    this.tableName = o.tableName;
    this.now = o.now ?? (() => new Date());
  }

  async acquire(key: string, owner: string, ttlMs: number): Promise<LeaseResult> {
    checkLeaseArgs(key, owner, ttlMs);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const nowMs = this.now().getTime();
      if (await this.tryPut(key, owner, nowMs, Math.ceil((nowMs + ttlMs) / 1000))) return { acquired: true };
      const held = await this.read(key);
      // Gone, expired or ours by now: the item changed between the two calls, so try again.
      if (held && held.owner !== owner && held.expiresAtSec * 1000 > nowMs) {
        return { acquired: false, holder: held.owner, expiresAt: new Date(held.expiresAtSec * 1000) };
      }
    }
    throw new LeaseContentionError(key, MAX_ATTEMPTS);
  }

  async release(key: string, owner: string): Promise<boolean> {
    checkLeaseArgs(key, owner);
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: key } },
          ConditionExpression: '#owner = :o',
          ExpressionAttributeNames: { '#owner': NAMES['#owner'] },
          ExpressionAttributeValues: { ':o': { S: owner } },
        }),
      );
      return true;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return false;
    }
  }

  private async tryPut(key: string, owner: string, nowMs: number, expiresAtSec: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: { pk: { S: key }, owner: { S: owner }, expiresAt: { N: String(expiresAtSec) } },
          ConditionExpression: 'attribute_not_exists(#pk) OR #owner = :o OR #exp <= :now',
          ExpressionAttributeNames: NAMES,
          // Fractional seconds: the stored expiry is whole seconds, the clock is not.
          ExpressionAttributeValues: { ':o': { S: owner }, ':now': { N: (nowMs / 1000).toFixed(3) } },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  private async read(key: string): Promise<{ owner: string; expiresAtSec: number } | undefined> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { pk: { S: key } },
        ConsistentRead: true,
        ProjectionExpression: '#owner, #exp',
        ExpressionAttributeNames: { '#owner': NAMES['#owner'], '#exp': NAMES['#exp'] },
      }),
    );
    const owner = stringAttr(out.Item?.owner);
    const expiresAtSec = Number(out.Item?.expiresAt?.N);
    if (owner === undefined || !Number.isFinite(expiresAtSec)) return undefined;
    return { owner, expiresAtSec };
  }
}

function stringAttr(v: AttributeValue | undefined): string | undefined {
  return v && 'S' in v ? v.S : undefined;
}

function isConditionFailure(err: unknown): boolean {
  return (
    err instanceof ConditionalCheckFailedException ||
    (err instanceof Error && err.name === 'ConditionalCheckFailedException')
  );
}
