import { Fn } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { ENV } from '../functions/handlers/lambda/names.js';

/** TCP ports the steps open towards XenServer hosts: XAPI over HTTPS/HTTP, and NBD for the CBT mode. */
export const XAPI_PORTS = [443, 80, 10809] as const;

export interface StepNetworkProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.ISubnet[];
  readonly xapiCidrs: readonly string[];
  readonly createVpcEndpoints: boolean;
}

/**
 * The steps' security group: egress only to the XAPI networks (443, 80, 10809) and to the AWS APIs
 * they call (Secrets Manager, DynamoDB, EventBridge) through interface endpoints in the same subnets.
 */
export class StepNetwork extends Construct {
  readonly securityGroup: ec2.SecurityGroup;
  /** Environment the Lambdas need to reach AWS APIs through the endpoints (DynamoDB has no private DNS). */
  readonly environment: Record<string, string> = {};

  constructor(scope: Construct, id: string, props: StepNetworkProps) {
    super(scope, id);
    this.securityGroup = new ec2.SecurityGroup(this, 'StepSecurityGroup', {
      vpc: props.vpc,
      description: 'xcr workflow steps: egress to XAPI hosts and AWS API endpoints only',
      allowAllOutbound: false,
    });
    for (const cidr of props.xapiCidrs) {
      for (const port of XAPI_PORTS) {
        this.securityGroup.addEgressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), `XAPI ${cidr}:${port}`);
      }
    }

    if (!props.createVpcEndpoints) {
      // The VPC already reaches the AWS APIs (NAT or existing endpoints): allow HTTPS to them.
      this.securityGroup.addEgressRule(
        ec2.Peer.anyIpv4(),
        ec2.Port.tcp(443),
        'AWS APIs via NAT or endpoints',
      );
      return;
    }
    const endpointSg = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: props.vpc,
      description: 'xcr AWS API endpoints: HTTPS from the workflow steps only',
      allowAllOutbound: false,
    });
    this.securityGroup.connections.allowTo(endpointSg, ec2.Port.tcp(443), 'AWS API endpoints');
    const endpoint = (name: string, service: ec2.InterfaceVpcEndpointAwsService, privateDns: boolean) =>
      new ec2.InterfaceVpcEndpoint(this, name, {
        vpc: props.vpc,
        service,
        subnets: { subnets: props.subnets },
        securityGroups: [endpointSg],
        privateDnsEnabled: privateDns,
        open: false,
      });
    endpoint('SecretsManager', ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, true);
    endpoint('EventBridge', ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE, true);
    // DynamoDB's interface endpoint has no private DNS name of its own: the SDK gets its URL.
    const dynamo = endpoint('DynamoDb', ec2.InterfaceVpcEndpointAwsService.DYNAMODB, false);
    const dnsName = Fn.select(1, Fn.split(':', Fn.select(0, dynamo.vpcEndpointDnsEntries)));
    this.environment[ENV.dynamoEndpoint] = Fn.join('', ['https://', dnsName]);
  }
}
