import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoLeaseStore } from '../../lease/dynamo.js';
import {
  ENDED_STATUSES,
  type EndedStatus,
  type ExecutionEnded,
  type ExecutionEndedDeps,
  executionEnded,
} from '../../replication/steps/execution-ended.js';
import { DynamoRunStore } from '../../runstore/dynamo.js';
import { EventBridgeRunEventSink } from './events.js';
import { ENV, METRICS_NAMESPACE, SERVICE_NAME } from './names.js';
import { addRunMetrics, powertoolsStepLogger } from './observability.js';

/** The part of a "Step Functions Execution Status Change" event this handler reads. */
export interface StatusChangeEvent {
  detail: {
    name: string;
    status: string;
    startDate: number;
    stopDate?: number | null;
    input?: string | null;
    error?: string | null;
    cause?: string | null;
  };
}

/** The run an execution status change is about, or undefined when there is nothing to clean up. */
export function parseStatusChange(event: StatusChangeEvent): ExecutionEnded | undefined {
  const d = event.detail;
  if (!ENDED_STATUSES.includes(d.status as EndedStatus)) return undefined;
  let jobId: unknown;
  try {
    jobId = (JSON.parse(d.input ?? '{}') as { jobId?: unknown }).jobId;
  } catch {
    jobId = undefined;
  }
  if (typeof jobId !== 'string' || jobId === '') return undefined;
  return {
    jobId,
    runId: d.name,
    status: d.status as EndedStatus,
    startedAt: new Date(d.startDate).toISOString(),
    stoppedAt: new Date(d.stopDate ?? Date.now()).toISOString(),
    ...(d.error ? { error: d.error } : {}),
    // The cause can hold a step's message; keep it short in the event.
    ...(d.cause ? { cause: d.cause.slice(0, 500) } : {}),
  };
}

let runtime: { deps: ExecutionEndedDeps; metrics: Metrics } | undefined;

function build(env: NodeJS.ProcessEnv = process.env) {
  const table = env[ENV.leaseTable];
  if (!table) throw new Error(`environment variable ${ENV.leaseTable} is not set (the CDK app sets it)`);
  const logger = new Logger({ serviceName: SERVICE_NAME });
  const endpoint = env[ENV.dynamoEndpoint];
  const client = new DynamoDBClient(endpoint ? { endpoint } : {});
  const runTable = env[ENV.runTable];
  return {
    deps: {
      leases: new DynamoLeaseStore({ client, tableName: table }),
      // What the run recorded before it ended goes into its event (the stack always sets it).
      ...(runTable ? { runs: new DynamoRunStore({ client, tableName: runTable }) } : {}),
      events: new EventBridgeRunEventSink(new EventBridgeClient({}), env[ENV.eventBus] ?? 'default'),
      logger: powertoolsStepLogger(logger),
    },
    metrics: new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME }),
  };
}

/** Lambda entry point of the EventBridge rule on the job state machines' failed/timed-out/aborted executions. */
export async function handler(event: StatusChangeEvent): Promise<unknown> {
  const ended = parseStatusChange(event);
  if (!ended) return { ignored: event.detail.status };
  runtime ??= build();
  try {
    const result = await executionEnded(runtime.deps, ended);
    addRunMetrics(runtime.metrics, result, new Date());
    return result;
  } finally {
    if (runtime.metrics.hasStoredMetrics()) runtime.metrics.publishStoredMetrics();
  }
}
