import {
  type AttributeValue,
  BatchWriteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import {
  checkIndex,
  checkRange,
  checkWorkList,
  indexKey,
  RUN_DATA_TTL_MS,
  type RunStore,
  type StoredRecord,
  type StoredResult,
} from './port.js';

export interface DynamoRunStoreOptions {
  client: Pick<DynamoDBClient, 'send'>;
  /** Table with partition key `runId` (S) and sort key `sk` (S); `expiresAt` should be its TTL attribute. */
  tableName: string;
  now?: () => Date;
  /** @default RUN_DATA_TTL_MS */
  ttlMs?: number;
  /** Items per Query page (DynamoDB returns at most 1 MB per page anyway). @default - no limit */
  pageSize?: number;
  /** Waits between BatchWriteItem attempts for unprocessed items; tests pass 0. @default 50 ms doubling */
  retryBaseMs?: number;
}

const ITEM = 'item#';
const RESULT = 'result#';
/** BatchWriteItem takes at most 25 requests. */
const BATCH = 25;
const MAX_WRITE_ATTEMPTS = 8;

/** Unprocessed items left after every attempt: DynamoDB kept throttling the writes. */
export class RunStoreWriteError extends Error {
  override readonly name = 'RunStoreWriteError';
  constructor(table: string, left: number) {
    super(
      `run store: DynamoDB left ${left} writes to ${table} unprocessed after ${MAX_WRITE_ATTEMPTS} attempts (throttled)`,
    );
  }
}

/**
 * Run store in one DynamoDB table: partition key = run id, sort key `item#<index>` (the VM uuid)
 * or `result#<index>` (the result as JSON), indexes zero-padded so a key range is an index range.
 * Work lists go in with BatchWriteItem (25 at a time, unprocessed items retried with backoff);
 * ranges are read with consistent Query pages. Every item carries `expiresAt` (epoch seconds), the
 * table's TTL attribute, so a run's data goes away on its own.
 */
export class DynamoRunStore implements RunStore {
  private readonly now: () => Date;
  private readonly ttlMs: number;
  private readonly retryBaseMs: number;

  constructor(private readonly o: DynamoRunStoreOptions) {
    this.now = o.now ?? (() => new Date());
    this.ttlMs = o.ttlMs ?? RUN_DATA_TTL_MS;
    this.retryBaseMs = o.retryBaseMs ?? 50;
  }

  async putWorkList(runId: string, vmUuids: readonly string[]): Promise<void> {
    checkWorkList(runId, vmUuids);
    const expiresAt = this.expiresAt();
    const requests: WriteRequest[] = vmUuids.map((vm, i) => ({
      PutRequest: {
        Item: { runId: { S: runId }, sk: { S: ITEM + indexKey(i) }, vm: { S: vm }, expiresAt },
      },
    }));
    await this.batchWrite(requests);
  }

  async readWorkList(runId: string, start: number, end: number): Promise<string[]> {
    checkRange(runId, start, end);
    if (end === start) return [];
    const items = await this.queryRange(runId, ITEM, start, end);
    return items.map((item) => item.vm?.S ?? '');
  }

  async putResult(runId: string, index: number, record: StoredRecord): Promise<void> {
    checkIndex(runId, index);
    await this.o.client.send(
      new PutItemCommand({
        TableName: this.o.tableName,
        Item: {
          runId: { S: runId },
          sk: { S: RESULT + indexKey(index) },
          data: { S: JSON.stringify(record) },
          expiresAt: this.expiresAt(),
        },
      }),
    );
  }

  async readResults(runId: string, start: number, end: number): Promise<StoredResult[]> {
    checkRange(runId, start, end);
    if (end === start) return [];
    const items = await this.queryRange(runId, RESULT, start, end);
    return items.map((item) => ({
      index: Number((item.sk?.S ?? '').slice(RESULT.length)),
      record: JSON.parse(item.data?.S ?? '{}') as StoredRecord,
    }));
  }

  async deleteRun(runId: string): Promise<void> {
    if (runId.length === 0) throw new RangeError('run store: runId must not be empty');
    const keys: WriteRequest[] = [];
    for await (const page of this.pages(runId, { projection: true })) {
      for (const item of page) keys.push({ DeleteRequest: { Key: { runId: item.runId!, sk: item.sk! } } });
    }
    await this.batchWrite(keys);
  }

  private expiresAt(): AttributeValue {
    return { N: String(Math.ceil((this.now().getTime() + this.ttlMs) / 1000)) };
  }

  private async queryRange(
    runId: string,
    prefix: string,
    start: number,
    end: number,
  ): Promise<Record<string, AttributeValue>[]> {
    const out: Record<string, AttributeValue>[] = [];
    for await (const page of this.pages(runId, {
      from: prefix + indexKey(start),
      to: prefix + indexKey(end - 1),
    })) {
      out.push(...page);
    }
    return out;
  }

  private async *pages(
    runId: string,
    o: { from?: string; to?: string; projection?: boolean },
  ): AsyncGenerator<Record<string, AttributeValue>[]> {
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const ranged = o.from !== undefined && o.to !== undefined;
      const out = await this.o.client.send(
        new QueryCommand({
          TableName: this.o.tableName,
          KeyConditionExpression: ranged ? '#pk = :r AND #sk BETWEEN :a AND :b' : '#pk = :r',
          ExpressionAttributeNames: { '#pk': 'runId', ...(ranged ? { '#sk': 'sk' } : {}) },
          ExpressionAttributeValues: {
            ':r': { S: runId },
            ...(ranged ? { ':a': { S: o.from! }, ':b': { S: o.to! } } : {}),
          },
          ...(o.projection ? { ProjectionExpression: 'runId, sk' } : {}),
          ConsistentRead: true,
          ...(this.o.pageSize ? { Limit: this.o.pageSize } : {}),
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      yield out.Items ?? [];
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }

  private async batchWrite(requests: WriteRequest[]): Promise<void> {
    for (let i = 0; i < requests.length; i += BATCH) {
      let pending = requests.slice(i, i + BATCH);
      for (let attempt = 1; pending.length > 0; attempt++) {
        if (attempt > MAX_WRITE_ATTEMPTS) throw new RunStoreWriteError(this.o.tableName, pending.length);
        if (attempt > 1 && this.retryBaseMs > 0) {
          await new Promise((r) => setTimeout(r, this.retryBaseMs * 2 ** (attempt - 2)));
        }
        const out = await this.o.client.send(
          new BatchWriteItemCommand({ RequestItems: { [this.o.tableName]: pending } }),
        );
        pending = out.UnprocessedItems?.[this.o.tableName] ?? [];
      }
    }
  }
}
