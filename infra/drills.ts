import type * as events from 'aws-cdk-lib/aws-events';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DRILL_STEP_NAMES, type DrillStepName } from '../functions/replication/drill/contract.js';
import { DRILL_STEP_SIZING, DrillWorkflow } from './drill-workflow.js';
import { StepLambdas, type StepLambdasProps } from './step-lambdas.js';

export interface DrillsProps extends Omit<StepLambdasProps, 'steps' | 'sizing' | 'entryPrefix'> {
  readonly deadLetterQueue: sqs.IQueue;
  readonly eventBus: events.IEventBus;
  readonly alarmTopic?: sns.ITopic;
}

/**
 * Recovery drills of the jobs with a `drill` block: seven drill step Lambdas (in the VPC, shared by
 * those jobs, bundled as the replication steps are) and one DrillWorkflow per such job.
 */
export class Drills extends Construct {
  readonly lambdas: StepLambdas<DrillStepName>;
  readonly workflows: ReadonlyMap<string, DrillWorkflow>;

  constructor(scope: Construct, id: string, props: DrillsProps) {
    super(scope, id);
    this.lambdas = new StepLambdas<DrillStepName>(this, 'Steps', {
      config: props.config,
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroup: props.securityGroup,
      environment: props.environment,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
      steps: DRILL_STEP_NAMES,
      sizing: DRILL_STEP_SIZING,
      entryPrefix: 'drill-',
    });
    const workflows = new Map<string, DrillWorkflow>();
    for (const job of props.config.jobs) {
      if (!job.drill) continue;
      workflows.set(
        job.id,
        new DrillWorkflow(this, `Drill-${job.id}`, {
          job,
          functions: this.lambdas.functions,
          deadLetterQueue: props.deadLetterQueue,
          eventBus: props.eventBus,
          logRetention: props.logRetention,
          removalPolicy: props.removalPolicy,
          ...(props.alarmTopic ? { alarmTopic: props.alarmTopic } : {}),
        }),
      );
    }
    this.workflows = workflows;
  }
}
