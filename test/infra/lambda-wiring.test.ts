import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../functions/config/load.js';
import { resetStepRuntime, stepHandler } from '../../functions/handlers/lambda/aws-deps.js';
import { EventBridgeRunEventSink } from '../../functions/handlers/lambda/events.js';
import { LAG_METRIC_NAME } from '../../functions/handlers/lambda/names.js';
import { addRunMetrics, recoveryPointAgeMinutes } from '../../functions/handlers/lambda/observability.js';
import {
  passwordFromSecretString,
  secretsManagerPasswordResolver,
} from '../../functions/handlers/lambda/secrets.js';
import { BATCH_SIZE, type RunSummary } from '../../functions/replication/contract.js';
import type { HandlerDeps } from '../../functions/replication/ports.js';
import { MemoryRunStore } from '../support/memory-run-store.js';

const SECRET = 'Known-Fake-Pa55word-7f3a';
const config = parseConfig({
  version: 1,
  pools: {
    a: { url: 'http://10.0.0.10', allowPlainHttp: true, password: { secret: 'xcr/a' } },
    b: { url: 'http://10.1.0.10', allowPlainHttp: true, password: { env: 'B_PASSWORD' } },
  },
  jobs: [
    {
      id: 'web',
      source: { pool: 'a' },
      destination: { pool: 'a', sr: { name: 'sr' } },
      vms: { tag: 't' },
      schedule: { rate: '15 minutes' },
    },
  ],
});

/** A Secrets Manager client double: answers GetSecretValue from a map, counts calls. */
function fakeSecrets(values: Record<string, string | Error>) {
  const calls: string[] = [];
  return {
    calls,
    client: {
      send: async (cmd: { input: { SecretId?: string } }) => {
        const id = cmd.input.SecretId!;
        calls.push(id);
        const v = values[id];
        if (v instanceof Error) throw v;
        return { SecretString: v };
      },
    } as never,
  };
}

describe('Secrets Manager password resolver', () => {
  it('reads plain or JSON secrets, caches them per container, re-reads after the cache time', async () => {
    let now = 0;
    const f = fakeSecrets({ 'xcr/a': JSON.stringify({ username: 'root', password: SECRET }) });
    const resolve = secretsManagerPasswordResolver(config, f.client, { cacheMs: 1000, now: () => now });
    expect(await resolve('a')).toBe(SECRET);
    expect(await resolve('a')).toBe(SECRET);
    expect(f.calls).toHaveLength(1);
    now = 1500;
    await resolve('a');
    expect(f.calls).toHaveLength(2);
    expect(passwordFromSecretString('plain-text')).toBe('plain-text');
    expect(() => passwordFromSecretString('{"user":"x"}')).toThrow(/"password" field/);
  });

  it('errors name the pool and secret, never a value; failures are not cached; env refs are refused', async () => {
    const denied = Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' });
    const f = fakeSecrets({ 'xcr/a': denied });
    const resolve = secretsManagerPasswordResolver(config, f.client);
    await expect(resolve('a')).rejects.toThrow(
      /pools\.a\.password: cannot read secret "xcr\/a": AccessDeniedException/,
    );
    await expect(resolve('a')).rejects.toThrow();
    expect(f.calls).toHaveLength(2);
    await expect(resolve('b')).rejects.toThrow(/on AWS use \{ "secret"/);
    await expect(resolve('nope')).rejects.toThrow(/not in the configuration/);
  });
});

const result: RunSummary = {
  jobId: 'web',
  runId: 'r1',
  status: 'partial',
  startedAt: '2026-11-26T18:00:00.000Z',
  finishedAt: '2026-11-26T18:12:00.000Z',
  bytes: 1000,
  vmCount: 2,
  succeeded: 1,
  failed: 1,
  failures: [{ vmUuid: 'v2', errorCode: 'VDI_IO_ERROR' }],
};

describe('run events', () => {
  it('one PutEvents entry: source xcr, detail-type "xcr run <status>", detail = the run summary', async () => {
    const sent: unknown[] = [];
    const sink = new EventBridgeRunEventSink(
      {
        send: async (cmd: { input: unknown }) => {
          sent.push(cmd.input);
          return { FailedEntryCount: 0 };
        },
      } as never,
      'xcr-bus',
    );
    await sink.publish(result);
    const entry = (sent[0] as { Entries: Record<string, unknown>[] }).Entries[0]!;
    expect(entry).toMatchObject({ Source: 'xcr', DetailType: 'xcr run partial', EventBusName: 'xcr-bus' });
    expect(JSON.parse(entry.Detail as string)).toEqual(result);

    const refusing = new EventBridgeRunEventSink(
      {
        send: async () => ({
          FailedEntryCount: 1,
          Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'x' }],
        }),
      } as never,
      'default',
    );
    await expect(refusing.publish(result)).rejects.toThrow(/InternalFailure/);
  });
});

describe('metrics', () => {
  it('lag = minutes since the run started when it produced a recovery point, else none', () => {
    expect(recoveryPointAgeMinutes(result, new Date('2026-11-26T18:12:00.000Z'))).toBe(12);
    const failed = { ...result, succeeded: 0, failed: 2 };
    expect(recoveryPointAgeMinutes(failed, new Date())).toBeUndefined();
  });

  it('emits the run metrics in EMF with the dimensions the alarms use', () => {
    const metrics = new Metrics({ namespace: 'xcr', serviceName: 'xcr' });
    addRunMetrics(metrics, result, new Date('2026-11-26T18:12:00.000Z'));
    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] };
    };
    expect(emf._aws.CloudWatchMetrics[0]!.Namespace).toBe('xcr');
    expect(emf._aws.CloudWatchMetrics[0]!.Dimensions[0]!.sort()).toEqual(['jobId', 'service']);
    expect(emf).toMatchObject({
      service: 'xcr',
      jobId: 'web',
      [LAG_METRIC_NAME]: 12,
      VmsFailed: 1,
      RunBytes: 1000,
    });
    metrics.clearMetrics();
  });
});

describe('the Lambda entry wrapper', () => {
  it('builds the runtime once, runs the real step handler, publishes the event of a skipped run', async () => {
    resetStepRuntime();
    const published: RunSummary[] = [];
    let builds = 0;
    const logged: string[] = [];
    const logger = new Logger({ serviceName: 'xcr', logLevel: 'INFO' });
    const deps: HandlerDeps = {
      config,
      resolvePassword: async () => {
        throw new Error('a skipped run reads no password');
      },
      leases: {
        acquire: async () => ({ acquired: true }),
        release: async () => {
          throw new Error('a skipped run must not release the lease it does not hold');
        },
      },
      runs: new MemoryRunStore(),
      events: { publish: async (r) => void published.push(r) },
      logger: {
        info: (m) => logged.push(m),
        warn: (m) => logged.push(m),
        error: (m) => logged.push(m),
      },
      now: () => new Date('2026-11-26T18:00:05.000Z'),
    };
    const metrics = new Metrics({ namespace: 'xcr', serviceName: 'xcr' });
    const handler = stepHandler('finish-run', () => {
      builds++;
      return { deps, logger, metrics };
    });
    const input = {
      jobId: 'web',
      runId: 'r2',
      startedAt: '2026-11-26T18:00:00.000Z',
      status: 'skipped',
      reason: 'run r1 of job web is still running',
      vmCount: 0,
      batchSize: BATCH_SIZE,
      batch: { index: 0, count: 0 },
    };
    const out = (await handler(input)) as RunSummary;
    await handler(input);
    expect(builds).toBe(1);
    expect(out).toMatchObject({ jobId: 'web', runId: 'r2', status: 'skipped', vmCount: 0, failures: [] });
    expect(published).toHaveLength(2);
    expect(metrics.hasStoredMetrics()).toBe(false);
    resetStepRuntime();
  });

  it('passes errors through with their name (the ASL error name)', async () => {
    resetStepRuntime();
    const handler = stepHandler('lock-check', () => ({
      deps: {
        config,
        resolvePassword: async () => 'x',
        leases: { acquire: async () => ({ acquired: true }), release: async () => true },
        runs: new MemoryRunStore(),
        events: { publish: async () => {} },
        logger: { info: () => {}, warn: () => {}, error: () => {} },
        now: () => new Date(),
      },
      logger: new Logger({ serviceName: 'xcr' }),
      metrics: new Metrics({ namespace: 'xcr', serviceName: 'xcr' }),
    }));
    const err = await handler({ jobId: 'nope', runId: 'r', scheduledTime: 'x' }).catch((e: Error) => e);
    expect((err as Error).name).toBe('ConfigError');
    resetStepRuntime();
  });
});
