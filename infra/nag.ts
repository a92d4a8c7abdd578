import { type CfnElement, Stack, Token, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';

/** The ARN pattern of a state machine's executions, as cdk-nag prints it in a finding's id. */
function executionsArn(sm: sfn.StateMachine): string {
  const stack = Stack.of(sm);
  const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
  const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
  const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
  const smLogicalId = stack.getLogicalId(sm.node.defaultChild as CfnElement);
  const name = `{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"${smLogicalId}"}]}]}`;
  return `arn:${partition}:states:${region}:${account}:execution:${name}*`;
}

/**
 * The cdk-nag (AwsSolutions) findings that are deliberate, acknowledged on the exact resources
 * with the reason. Anything else the pack reports is a defect (the infra tests fail on it).
 */
export function acknowledgeNagFindings(o: {
  stepRoles: iam.IRole[];
  /** Each state machine with the functions its tasks invoke. */
  stateMachines: { machine: sfn.StateMachine; functions: IFunction[] }[];
  deadLetterQueue: sqs.IQueue;
  logGroups: logs.ILogGroup[];
  /** Run → batch and batch → transfer: the parent starts, describes and stops the child's executions. */
  childStarts: { parent: sfn.StateMachine; child: sfn.StateMachine }[];
}): void {
  for (const { parent, child } of o.childStarts) {
    Validations.of(parent.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${executionsArn(child)}]`,
      reason:
        'DescribeExecution/StopExecution on the executions of this one child state machine (startExecution.sync); their names are per run and batch, or generated.',
    });
  }
  for (const role of o.stepRoles) {
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'A function in a VPC manages its ENIs with ec2:CreateNetworkInterface/Describe*/Delete*, which take no resource ARN; logs and secrets are granted by ARN.',
    });
  }
  for (const { machine: sm, functions } of o.stateMachines) {
    Validations.of(sm.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Step Functions log delivery (logs:CreateLogDelivery, …) and X-Ray (PutTraceSegments) support no resource-level permissions.',
    });
    for (const fn of functions) {
      const logicalId = Stack.of(fn).getLogicalId(fn.node.defaultChild as CfnElement);
      Validations.of(sm.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
        reason:
          'lambda:InvokeFunction on the step function and its versions/aliases (ARN suffix :*), nothing else.',
      });
    }
  }
  for (const logGroup of o.logGroups) {
    Validations.of(logGroup).acknowledge({
      id: 'cdk-validator-cfnguard::cloudwatch_log_group_retention_period_check',
      reason:
        "Retention is the construct's logRetention prop (default one month: step logs and execution history are for diagnosing recent runs); a stack that must keep a year sets it.",
    });
    Validations.of(logGroup).acknowledge({
      id: 'cdk-validator-cfnguard::cloudwatch_log_group_encrypted_check',
      reason:
        'The logs hold ids, counters and error codes only (never credentials); CloudWatch Logs encrypts them at rest with its own keys, and a customer key would add a key policy to manage for no secret.',
    });
  }
  Validations.of(o.deadLetterQueue).acknowledge({
    id: 'cdk-validator-cfnguard::sqs_dlq_check',
    reason:
      'This queue is itself the dead-letter queue of the schedules and the drill rule targets (EventBridge, not an SQS redrive); a queue behind it would only defer the same manual inspection.',
  });
  Validations.of(o.deadLetterQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      'This queue is itself the dead-letter queue of the schedules; its messages are inspected by hand.',
  });
}
