import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { loadConfigFile } from '../../config/load.js';
import { DynamoLeaseStore } from '../../lease/dynamo.js';
import type { RunSummary, StepName } from '../../replication/contract.js';
import type { DrillReport, DrillStepName } from '../../replication/drill/contract.js';
import type { FailoverStepName } from '../../replication/failover/contract.js';
import type { HandlerDeps } from '../../replication/ports.js';
import { DynamoRunStore } from '../../runstore/dynamo.js';
import type { RunStore } from '../../runstore/port.js';
import { createDrillHandlers } from '../drill-steps.js';
import { createFailoverHandlers } from '../failover-steps.js';
import { createStepHandlers, type StepHandler } from '../steps.js';
import { EventBridgeRunEventSink } from './events.js';
import { ENV, METRICS_NAMESPACE, SERVICE_NAME } from './names.js';
import { addDrillMetrics, addRunMetrics, correlationKeys, powertoolsStepLogger } from './observability.js';
import { secretsManagerPasswordResolver } from './secrets.js';

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`environment variable ${name} is not set (the CDK app sets it)`);
  return value;
}

export interface AwsRuntime {
  deps: HandlerDeps;
  logger: Logger;
  metrics: Metrics;
}

function lazyRunStore(build: () => RunStore): RunStore {
  let store: RunStore | undefined;
  const get = () => (store ??= build());
  return {
    putWorkList: (runId, vmUuids) => get().putWorkList(runId, vmUuids),
    readWorkList: (runId, start, end) => get().readWorkList(runId, start, end),
    putResult: (runId, index, record) => get().putResult(runId, index, record),
    readResults: (runId, start, end) => get().readResults(runId, start, end),
    deleteRun: (runId) => get().deleteRun(runId),
  };
}

/** Builds the step dependencies from AWS services; done once per container. */
export function createAwsRuntime(env: NodeJS.ProcessEnv = process.env): AwsRuntime {
  const logger = new Logger({ serviceName: SERVICE_NAME });
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: SERVICE_NAME });
  const config = loadConfigFile(required(env, ENV.configFile));
  const dynamoEndpoint = env[ENV.dynamoEndpoint];
  const dynamo = new DynamoDBClient(dynamoEndpoint ? { endpoint: dynamoEndpoint } : {});
  const deps: HandlerDeps = {
    config,
    resolvePassword: secretsManagerPasswordResolver(config, new SecretsManagerClient({})),
    leases: new DynamoLeaseStore({ client: dynamo, tableName: required(env, ENV.leaseTable) }),
    // The drill Lambdas share this runtime and have no run table: the store is built on first use
    // (the failover steps that use it, prepare and clone for the final delta, are granted it).
    runs: lazyRunStore(() => new DynamoRunStore({ client: dynamo, tableName: required(env, ENV.runTable) })),
    events: new EventBridgeRunEventSink(new EventBridgeClient({}), env[ENV.eventBus] ?? 'default'),
    logger: powertoolsStepLogger(logger),
    now: () => new Date(),
  };
  return { deps, logger, metrics };
}

type LambdaContext = Parameters<Logger['addContext']>[0];

type Handlers = Record<StepName | FailoverStepName, StepHandler> & {
  [K in DrillStepName as `drill-${K}`]: StepHandler;
};
let runtime: { aws: AwsRuntime; handlers: Handlers } | undefined;

function handlersOf(aws: AwsRuntime): Handlers {
  const drill = Object.entries(createDrillHandlers(aws.deps)).map(([k, h]) => [`drill-${k}`, h]);
  return {
    ...createStepHandlers(aws.deps),
    ...createFailoverHandlers(aws.deps),
    ...Object.fromEntries(drill),
  } as Handlers;
}

/**
 * The Lambda handler of one step: dependencies built on the first call of a container and reused,
 * correlation keys in every log line, metrics flushed per invocation. Errors pass through with
 * their `name`, which is the ASL error name the state machine retries or catches.
 */
export function stepHandler(step: keyof Handlers, build: () => AwsRuntime = createAwsRuntime) {
  return async (event: unknown, context?: LambdaContext): Promise<unknown> => {
    if (!runtime) {
      const aws = build();
      runtime = { aws, handlers: handlersOf(aws) };
    }
    const { aws, handlers } = runtime;
    aws.logger.resetKeys();
    // Request id, function name and cold start on every line.
    if (context) aws.logger.addContext(context);
    aws.logger.appendKeys({ step, ...correlationKeys(event) });
    try {
      const output = await handlers[step](event);
      if (step === 'finish-run') addRunMetrics(aws.metrics, output as RunSummary, aws.deps.now());
      if (step === 'drill-report') addDrillMetrics(aws.metrics, output as DrillReport);
      return output;
    } finally {
      if (aws.metrics.hasStoredMetrics()) aws.metrics.publishStoredMetrics();
    }
  };
}

/** Forgets the per-container state (tests only). */
export function resetStepRuntime(): void {
  runtime = undefined;
}
