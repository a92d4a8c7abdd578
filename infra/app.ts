/**
 * The CDK app: `cdk synth -c config=path/to/xcr.config.json` (or XCR_CONFIG=...), default
 * xcr.config.example.json. `-c vpcEndpoints=false` when the VPC already reaches the AWS APIs,
 * `-c distributedMap=true` for jobs of hundreds of VMs (one child execution per VM).
 */
import { resolve } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfigFile } from '../functions/config/load.js';
import { XcrStack } from './stack.js';

const app = new App();
const configPath = resolve(
  String(app.node.tryGetContext('config') ?? process.env.XCR_CONFIG ?? 'xcr.config.example.json'),
);
const config = loadConfigFile(configPath);
const vpcEndpoints = app.node.tryGetContext('vpcEndpoints');
const distributedMap = app.node.tryGetContext('distributedMap');

new XcrStack(app, String(app.node.tryGetContext('stackName') ?? 'Xcr'), {
  config,
  ...(vpcEndpoints !== undefined ? { createVpcEndpoints: String(vpcEndpoints) !== 'false' } : {}),
  ...(distributedMap !== undefined ? { distributedMap: String(distributedMap) === 'true' } : {}),
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  description: 'xcr: continuous replication of XenServer / XCP-ng VMs',
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
