import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { DynamoLeaseStore } from '../../lease/dynamo.js';
import {
  ENDED_WORKFLOWS,
  type EndedWorkflow,
  type WorkflowEnded,
  workflowEnded,
  workflowEndedOf,
} from '../../replication/failover/ended.js';
import {
  type ExecutionEnded,
  type ExecutionEndedDeps,
  endedExecutionOf,
  executionEnded,
  type StatusChangeDetail,
} from '../../replication/steps/execution-ended.js';
import { DynamoRunStore } from '../../runstore/dynamo.js';
import { EventBridgeRunEventSink } from './events.js';
import { ENV, METRICS_NAMESPACE, SERVICE_NAME } from './names.js';
import { addRunMetrics, powertoolsStepLogger } from './observability.js';

/**
 * A "Step Functions Execution Status Change" event: the job machines' rule passes it as it is, the
 * failover and failback machines' rules as `{ workflow, detail }` (their target's input).
 */
export interface StatusChangeEvent {
  workflow?: EndedWorkflow;
  detail: StatusChangeDetail;
}

/** The run an execution status change is about, or undefined when there is nothing to clean up. */
export function parseStatusChange(event: StatusChangeEvent): ExecutionEnded | undefined {
  const e = endedExecutionOf(event.detail);
  if (!e) return undefined;
  const { input: _input, name, ...rest } = e;
  return { ...rest, runId: name };
}

/** The failover or failback run an execution status change is about, or undefined (nothing to clean up). */
export function parseWorkflowEnded(event: StatusChangeEvent): WorkflowEnded | undefined {
  if (!event.workflow || !ENDED_WORKFLOWS.includes(event.workflow)) return undefined;
  const e = endedExecutionOf(event.detail);
  return e && workflowEndedOf(event.workflow, e);
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

/**
 * Lambda entry point of the EventBridge rules on the job, failover and failback state machines'
 * failed/timed-out/aborted executions.
 */
export async function handler(event: StatusChangeEvent): Promise<unknown> {
  if (event.workflow) {
    const ended = parseWorkflowEnded(event);
    if (!ended) return { ignored: event.detail.status };
    runtime ??= build();
    return workflowEnded(runtime.deps, ended);
  }
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
