/**
 * The CDK app: `cdk synth -c config=path/to/xcr.config.json` (or XCR_CONFIG=...), default
 * xcr.config.example.json. `-c vpcEndpoints=false` when the VPC already reaches the AWS APIs.
 */
import { resolve } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, loadConfigFile } from '../functions/config/load.js';
import { DeploymentError, stackEnvironment } from './environment.js';
import { XcrStack } from './stack.js';

const app = new App();
const configPath = resolve(
  String(app.node.tryGetContext('config') ?? process.env.XCR_CONFIG ?? 'xcr.config.example.json'),
);

try {
  const config = loadConfigFile(configPath);
  // deployment.account/region win over the CDK CLI's environment; nothing here calls AWS.
  const env = stackEnvironment(config, process.env);
  if (config.deployment && env.source.region === 'none') {
    process.stderr.write(
      "xcr synth: deployment.region is not set (nor CDK_DEFAULT_REGION): the template is environment-agnostic and the subnets' zones and secret ARNs are not checked against a region; set deployment.account and deployment.region to pin the stack.\n",
    );
  }
  const vpcEndpoints = app.node.tryGetContext('vpcEndpoints');
  new XcrStack(app, String(app.node.tryGetContext('stackName') ?? 'Xcr'), {
    config,
    ...(vpcEndpoints !== undefined ? { createVpcEndpoints: String(vpcEndpoints) !== 'false' } : {}),
    env: { account: env.account, region: env.region },
    description: 'xcr: continuous replication of XenServer / XCP-ng VMs',
  });
} catch (err) {
  // A configuration problem is the user's to fix: one message, no stack trace.
  if (err instanceof ConfigError || err instanceof DeploymentError) {
    process.stderr.write(`xcr synth (${configPath}): ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
