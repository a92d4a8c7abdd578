/**
 * The drill's Lambda entry points (functions/handlers/lambda/drill-*.ts) as the task states of the
 * synthesized drill machine in the local runner: the event goes to EventBridge as
 * `xcr drill passed|failed`, DrillPassed and DrillBootSeconds leave as EMF with the alarm's dimensions.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { resetStepRuntime, stepHandler } from '../../../functions/handlers/lambda/aws-deps.js';
import { EventBridgeRunEventSink } from '../../../functions/handlers/lambda/events.js';
import type { DrillReport } from '../../../functions/replication/drill/contract.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  resetStepRuntime();
  await sites?.close();
  sites = undefined;
});

describe('drill Lambda entry points', () => {
  it('publish the drill event and the drill metrics once per drill', async () => {
    sites = await startSites({
      vms: [
        { name_label: 'web', disks: [{ sizeBytes: 4 * MiB, data: [{ offset: 0, length: MiB, seed: 2 }] }] },
      ],
      destinationGuests: [{ delayMs: 200 }, { nameIncludes: 'drill-silent', outcome: 'silent' }],
      job: { drill: { every: { afterRuns: 1 }, timeoutMinutes: 0.02 } } as never,
    });
    const s = sites;
    expect((await s.run()).status).toBe('succeeded');
    const entries: Record<string, unknown>[] = [];
    const emitted: Record<string, unknown>[] = [];
    const metrics = new Metrics({ namespace: 'xcr', serviceName: 'xcr' });
    metrics.publishStoredMetrics = () => {
      emitted.push(metrics.serializeMetrics() as unknown as Record<string, unknown>);
      metrics.clearMetrics();
      return metrics;
    };
    const events = new EventBridgeRunEventSink(
      {
        send: async (cmd: { input: { Entries: Record<string, unknown>[] } }) => {
          entries.push(...cmd.input.Entries);
          return { FailedEntryCount: 0 };
        },
      } as never,
      'xcr-bus',
    );
    const runtime = () => ({
      deps: { ...s.deps, events },
      logger: new Logger({ serviceName: 'xcr', logLevel: 'SILENT' }),
      metrics,
    });
    const viaLambda = { wrapStep: (step: string) => stepHandler(`drill-${step}` as never, runtime) };

    const passed = await s.drill({ drillRun: 'drill-ok' }, viaLambda);
    expect(passed.status).toBe('passed');
    // this clone's guest never reports tools
    const failed = await s.drill({ drillRun: 'drill-silent' }, viaLambda);
    expect(failed.status).toBe('failed');

    expect(entries.map((e) => [e.Source, e.DetailType, e.EventBusName])).toEqual([
      ['xcr', 'xcr drill passed', 'xcr-bus'],
      ['xcr', 'xcr drill failed', 'xcr-bus'],
    ]);
    const details = entries.map((e) => JSON.parse(e.Detail as string) as DrillReport);
    expect(details[0]).toEqual(passed);
    expect(details[0]!.results[0]!.bootSeconds).toBeGreaterThanOrEqual(0.2);
    expect(details[1]!.reason).toMatch(/^check: DRILL_CHECK_TIMEOUT: timed out/);

    const drillMetrics = emitted.filter((m) => 'DrillPassed' in m);
    expect(drillMetrics).toHaveLength(2);
    expect(drillMetrics[0]).toMatchObject({ service: 'xcr', jobId: 'job1', DrillPassed: 1 });
    expect(drillMetrics[0]!.DrillBootSeconds).toBe(passed.results[0]!.bootSeconds);
    expect(drillMetrics[1]).toMatchObject({ jobId: 'job1', DrillPassed: 0 });
    expect(drillMetrics[1]).not.toHaveProperty('DrillBootSeconds');
    const emf = drillMetrics[0]!._aws as {
      CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[];
    };
    expect(emf.CloudWatchMetrics[0]!.Namespace).toBe('xcr');
    expect(emf.CloudWatchMetrics[0]!.Dimensions[0]!.sort()).toEqual(['jobId', 'service']);
    s.assertNoLeaks();
  });
});
