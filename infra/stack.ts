import { Annotations, Fn, Stack, type StackProps, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { Construct } from 'constructs';
import type { XcrConfig } from '../functions/config/schema.js';
import { ContinuousReplication } from './continuous-replication.js';
import { DeploymentError, deploymentProblems, stackEnvironment } from './environment.js';

export interface XcrStackProps extends StackProps {
  /** The validated configuration; its `deployment` block names the VPC, subnets and XAPI networks. */
  readonly config: XcrConfig;
  /**
   * Create Secrets Manager, EventBridge and DynamoDB interface endpoints in the subnets.
   * @default true
   */
  readonly createVpcEndpoints?: boolean;
}

/** The deployable xcr stack: an existing VPC (no lookups, so synth needs no credentials) and the construct. */
export class XcrStack extends Stack {
  readonly replication: ContinuousReplication;

  constructor(scope: Construct, id: string, props: XcrStackProps) {
    // Without an explicit env the config's deployment.account/region pin the stack.
    const pinned = stackEnvironment(props.config, {});
    super(scope, id, {
      ...props,
      env: props.env ?? { account: pinned.account, region: pinned.region },
    });
    const concrete = (v: string) => (Token.isUnresolved(v) ? undefined : v);
    const account = concrete(this.account);
    const region = concrete(this.region);
    const problems = deploymentProblems(props.config, {
      ...(account ? { account } : {}),
      ...(region ? { region } : {}),
      source: {
        account:
          props.config.deployment?.account === account && account ? 'config' : account ? 'cdk' : 'none',
        region: props.config.deployment?.region === region && region ? 'config' : region ? 'cdk' : 'none',
      },
    });
    if (problems.length > 0) throw new DeploymentError(problems);
    const deployment = props.config.deployment!;
    // Never `this.availabilityZones`: with a known region it is a context lookup (AWS credentials).
    const availabilityZones =
      deployment.availabilityZones ?? deployment.subnetIds.map((_, i) => Fn.select(i, Fn.getAzs()));
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', { vpcId: deployment.vpcId, availabilityZones });
    const subnets = deployment.subnetIds.map((subnetId, i) => {
      const subnet = ec2.Subnet.fromSubnetAttributes(this, `Subnet${i}`, {
        subnetId,
        ...(deployment.availabilityZones?.[i] ? { availabilityZone: deployment.availabilityZones[i] } : {}),
      });
      // Nothing here adds routes (no gateway endpoints), so the route table id is never needed.
      Annotations.of(subnet).acknowledgeWarning(
        '@aws-cdk/aws-ec2:noSubnetRouteTableId',
        'no routes are added',
      );
      return subnet;
    });
    this.replication = new ContinuousReplication(this, 'Replication', {
      config: props.config,
      vpc,
      subnets,
      xapiCidrs: deployment.xapiCidrs,
      ...(props.createVpcEndpoints !== undefined ? { createVpcEndpoints: props.createVpcEndpoints } : {}),
      ...(deployment.lagAlarmMinutes !== undefined ? { lagAlarmMinutes: deployment.lagAlarmMinutes } : {}),
      ...(deployment.alarmEmail !== undefined ? { alarmEmail: deployment.alarmEmail } : {}),
    });
  }
}
