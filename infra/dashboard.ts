import { Duration } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../functions/handlers/lambda/names.js';
import type { JobWorkflow } from './job-workflow.js';

/** A CloudWatch dashboard with one row per job: runs by outcome, replication lag, bytes moved. */
export function runDashboard(scope: Construct, jobs: ReadonlyMap<string, JobWorkflow>): cw.Dashboard {
  const dashboard = new cw.Dashboard(scope, 'Dashboard', { defaultInterval: Duration.days(1) });
  for (const [jobId, job] of jobs) {
    const sm = job.stateMachine;
    const runMetric = (metricName: string, statistic: string) =>
      new cw.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { service: SERVICE_NAME, jobId },
        statistic,
        period: Duration.minutes(15),
      });
    dashboard.addWidgets(
      new cw.GraphWidget({
        title: `${jobId}: runs`,
        left: [sm.metricSucceeded(), sm.metricFailed(), sm.metricTimedOut(), runMetric('RunSkipped', 'Sum')],
        width: 8,
      }),
      new cw.GraphWidget({
        title: `${jobId}: newest recovery point age (minutes)`,
        left: [runMetric('RecoveryPointAgeMinutes', 'Maximum')],
        leftAnnotations: [{ value: job.lagThresholdMinutes, label: 'lag alarm' }],
        width: 8,
      }),
      new cw.GraphWidget({
        title: `${jobId}: bytes moved and failed VMs`,
        left: [runMetric('RunBytes', 'Sum')],
        right: [runMetric('VmsFailed', 'Sum')],
        width: 8,
      }),
    );
  }
  return dashboard;
}
