import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';

/**
 * The cdk-nag (AwsSolutions) findings that are deliberate, acknowledged on the exact resources
 * with the reason. Anything else the pack reports is a defect (the infra tests fail on it).
 */
export function acknowledgeNagFindings(o: {
  stepRoles: iam.IRole[];
  functions: IFunction[];
  stateMachines: sfn.StateMachine[];
  deadLetterQueue: sqs.IQueue;
}): void {
  for (const role of o.stepRoles) {
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'A function in a VPC manages its ENIs with ec2:CreateNetworkInterface/Describe*/Delete*, which take no resource ARN; logs and secrets are granted by ARN.',
    });
  }
  for (const sm of o.stateMachines) {
    Validations.of(sm.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Step Functions log delivery (logs:CreateLogDelivery, …) and X-Ray (PutTraceSegments) support no resource-level permissions.',
    });
    for (const fn of o.functions) {
      const logicalId = Stack.of(fn).getLogicalId(fn.node.defaultChild as CfnElement);
      Validations.of(sm.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
        reason:
          'lambda:InvokeFunction on the step function and its versions/aliases (ARN suffix :*), nothing else.',
      });
    }
  }
  Validations.of(o.deadLetterQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      'This queue is itself the dead-letter queue of the schedules; its messages are inspected by hand.',
  });
}
