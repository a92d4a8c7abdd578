import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { FAILOVER_STEP_NAMES, type FailoverStepName } from '../functions/replication/failover/contract.js';
import { FAILOVER_STEP_SIZING, FailoverWorkflow } from './failover-workflow.js';
import { StepLambdas, type StepLambdasProps } from './step-lambdas.js';

export interface FailoversProps extends Omit<StepLambdasProps, 'steps' | 'sizing' | 'entryPrefix'> {
  /** Each job's batch machine by job id (a planned failover's final delta runs it). */
  readonly batchMachines: ReadonlyMap<string, sfn.IStateMachine>;
}

/**
 * Failover and failback of every job: the failover step Lambdas (in the VPC, shared by the jobs,
 * bundled as the replication steps are) and per job a FailoverWorkflow (its two state machines).
 */
export class Failovers extends Construct {
  readonly lambdas: StepLambdas<FailoverStepName>;
  readonly workflows: ReadonlyMap<string, FailoverWorkflow>;

  constructor(scope: Construct, id: string, props: FailoversProps) {
    super(scope, id);
    this.lambdas = new StepLambdas<FailoverStepName>(this, 'Steps', {
      ...props,
      steps: FAILOVER_STEP_NAMES,
      sizing: FAILOVER_STEP_SIZING,
    });
    const workflows = new Map<string, FailoverWorkflow>();
    for (const job of props.config.jobs) {
      const batch = props.batchMachines.get(job.id);
      if (!batch) throw new Error(`job ${job.id}: no batch state machine for its final delta`);
      workflows.set(
        job.id,
        new FailoverWorkflow(this, `Failover-${job.id}`, {
          job,
          functions: this.lambdas.functions,
          batch,
          logRetention: props.logRetention,
          removalPolicy: props.removalPolicy,
        }),
      );
    }
    this.workflows = workflows;
  }
}
