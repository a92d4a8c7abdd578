import type { XcrConfig } from '../functions/config/schema.js';

/**
 * Where the stack deploys, decided before any construct exists: the config's `deployment.account`
 * and `deployment.region` when set, else the CDK CLI's environment (CDK_DEFAULT_ACCOUNT/REGION),
 * else nothing (an environment-agnostic template). Either way synth makes no AWS call: the stack
 * never looks anything up (the VPC is imported by id, the AZs come from the config or Fn::GetAZs).
 */
export interface StackEnvironment {
  account?: string;
  region?: string;
  /** Where each value came from, for messages. */
  source: { account: 'config' | 'cdk' | 'none'; region: 'config' | 'cdk' | 'none' };
}

export function stackEnvironment(
  config: XcrConfig,
  env: Readonly<Record<string, string | undefined>>,
): StackEnvironment {
  const d = config.deployment;
  const account = d?.account ?? env.CDK_DEFAULT_ACCOUNT;
  const region = d?.region ?? env.CDK_DEFAULT_REGION;
  return {
    ...(account ? { account } : {}),
    ...(region ? { region } : {}),
    source: {
      account: d?.account ? 'config' : account ? 'cdk' : 'none',
      region: d?.region ? 'config' : region ? 'cdk' : 'none',
    },
  };
}

/** The example users copy when the deployment block is missing. */
export const DEPLOYMENT_EXAMPLE = `"deployment": {
    "account": "123456789012",
    "region": "eu-west-1",
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": ["subnet-0a1b2c3d4e5f60719"],
    "availabilityZones": ["eu-west-1a"],
    "xapiCidrs": ["10.10.0.0/24"]
  }`;

export class DeploymentError extends Error {
  override readonly name = 'DeploymentError';
  constructor(readonly problems: string[]) {
    super(`cannot synthesize the stack:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const ARN = /^arn:(aws[a-z-]*):([a-z0-9-]+):([a-z0-9-]*):(\d{12}|):/;

/**
 * What CloudFormation or the first run would refuse, found at synth time: subnets in AZs of
 * another region, secrets (and their KMS keys) in another region or account than the stack.
 * Empty when the stack's region and account are not known (nothing to compare against).
 */
export function deploymentProblems(config: XcrConfig, env: StackEnvironment): string[] {
  const problems: string[] = [];
  const d = config.deployment;
  if (!d) {
    return [
      `the configuration has no "deployment" block; add one to deploy to AWS, e.g.\n  ${DEPLOYMENT_EXAMPLE}`,
    ];
  }
  const from = (what: 'account' | 'region') =>
    env.source[what] === 'config' ? `deployment.${what}` : `CDK_DEFAULT_${what.toUpperCase()}`;
  if (d.availabilityZones && d.availabilityZones.length !== d.subnetIds.length) {
    problems.push(
      `deployment.availabilityZones: ${d.availabilityZones.length} zones for ${d.subnetIds.length} subnets; list the zone of each subnet, in the same order`,
    );
  }
  if (env.region) {
    d.availabilityZones?.forEach((az, i) => {
      if (!az.startsWith(env.region!)) {
        problems.push(
          `deployment.availabilityZones.${i}: "${az}" is not in ${env.region} (${from('region')}); give the zone of ${d.subnetIds[i]} in ${env.region}, or set deployment.region to the subnets' region`,
        );
      }
    });
  }
  for (const [name, pool] of Object.entries(config.pools)) {
    if (!('secret' in pool.password)) continue;
    const refs: [string, string][] = [[`pools.${name}.password.secret`, pool.password.secret]];
    if (pool.password.kmsKeyArn) refs.push([`pools.${name}.password.kmsKeyArn`, pool.password.kmsKeyArn]);
    for (const [field, ref] of refs) {
      const m = ARN.exec(ref);
      if (!m) continue;
      const [, , , region, account] = m;
      if (env.region && region && region !== env.region) {
        problems.push(
          `${field}: the ARN is in ${region} but the stack deploys to ${env.region} (${from('region')}); the steps read secrets in their own region — replicate the secret to ${env.region} and use that ARN`,
        );
      }
      if (env.account && account && account !== env.account && !pool.password.kmsKeyArn) {
        problems.push(
          `${field}: the ARN is in account ${account} but the stack deploys to ${env.account} (${from('account')}); a secret shared across accounts must be encrypted with a customer-managed key: add "kmsKeyArn" (and a resource policy for this account)`,
        );
      }
    }
  }
  return problems;
}
