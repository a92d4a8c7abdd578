import type { Logger } from '@aws-lambda-powertools/logger';
import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { RunSummary } from '../../replication/contract.js';
import type { DrillReport } from '../../replication/drill/contract.js';
import type { StepLogger } from '../../replication/ports.js';
import { DRILL_BOOT_METRIC, DRILL_PASSED_METRIC, LAG_METRIC_NAME } from './names.js';

/** The step logger over Powertools Logger: structured JSON with the correlation keys appended per call. */
export function powertoolsStepLogger(logger: Logger): StepLogger {
  return {
    info: (message, fields) => logger.info(message, { ...fields }),
    warn: (message, fields) => logger.warn(message, { ...fields }),
    error: (message, fields) => logger.error(message, { ...fields }),
  };
}

/** Correlation keys found in a step's input (jobId, runId, vmUuid, drillRun, recoveryPoint), for the logger. */
export function correlationKeys(input: unknown): Record<string, string> {
  const keys: Record<string, string> = {};
  if (input && typeof input === 'object') {
    for (const k of ['jobId', 'runId', 'vmUuid', 'drillRun', 'recoveryPoint'] as const) {
      const v = (input as Record<string, unknown>)[k];
      if (typeof v === 'string') keys[k] = v;
    }
  }
  return keys;
}

/**
 * Age of the newest recovery point at the end of a run, in minutes, when the run produced one.
 * The snapshot is taken after `startedAt`, so this slightly overstates the lag (never understates).
 */
export function recoveryPointAgeMinutes(result: RunSummary, now: Date): number | undefined {
  if (result.succeeded === 0) return undefined;
  return Math.max(0, (now.getTime() - Date.parse(result.startedAt)) / 60_000);
}

/** Per-run CloudWatch metrics (EMF), dimension jobId. The lag alarm watches RecoveryPointAgeMinutes. */
export function addRunMetrics(metrics: Metrics, result: RunSummary, now: Date): void {
  metrics.addDimension('jobId', result.jobId);
  metrics.addMetric('RunBytes', MetricUnit.Bytes, result.bytes);
  metrics.addMetric('VmsSucceeded', MetricUnit.Count, result.succeeded);
  metrics.addMetric('VmsFailed', MetricUnit.Count, result.failed);
  metrics.addMetric('RunSkipped', MetricUnit.Count, result.status === 'skipped' ? 1 : 0);
  const seconds = (Date.parse(result.finishedAt) - Date.parse(result.startedAt)) / 1000;
  if (Number.isFinite(seconds)) metrics.addMetric('RunDurationSeconds', MetricUnit.Seconds, seconds);
  const age = recoveryPointAgeMinutes(result, now);
  if (age !== undefined) metrics.addMetric(LAG_METRIC_NAME, MetricUnit.NoUnit, age);
}

/** Per-drill metrics (EMF), dimension jobId: DrillPassed (the alarm watches it) and each point's boot time. */
export function addDrillMetrics(metrics: Metrics, report: DrillReport): void {
  metrics.addDimension('jobId', report.jobId);
  metrics.addMetric(DRILL_PASSED_METRIC, MetricUnit.Count, report.status === 'passed' ? 1 : 0);
  for (const r of report.results) {
    if (r.passed && r.bootSeconds !== undefined)
      metrics.addMetric(DRILL_BOOT_METRIC, MetricUnit.Seconds, r.bootSeconds);
  }
}
