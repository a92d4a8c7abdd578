import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, type RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { XcrConfig } from '../functions/config/schema.js';
import { ENV, METRICS_NAMESPACE, SERVICE_NAME } from '../functions/handlers/lambda/names.js';
import { STEP_NAMES, type StepName } from '../functions/replication/contract.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the validated configuration lands inside every bundle (`/var/task` is the code root). */
export const BUNDLED_CONFIG_NAME = 'xcr.config.json';

/** CommonJS dependencies (xmlrpc, …) call require() inside the ES module bundle. */
export const ESM_REQUIRE_BANNER =
  "import { createRequire as __xcrRequire } from 'node:module'; const require = __xcrRequire(import.meta.url);";

/**
 * Files written into every bundle: the validated config (defaults applied, secrets only as
 * references) and the CA bundles pools name by local path, with the config pointing at the copies.
 */
export function bundledFiles(config: XcrConfig): Map<string, string> {
  const files = new Map<string, string>();
  const pools = Object.fromEntries(
    Object.entries(config.pools).map(([name, pool]) => {
      if (!pool.tlsCaFile) return [name, pool];
      let pem: string;
      try {
        pem = readFileSync(pool.tlsCaFile, 'utf8');
      } catch (err) {
        throw new Error(
          `pools.${name}.tlsCaFile: cannot read ${pool.tlsCaFile} to bundle it: ${(err as Error).message}`,
        );
      }
      files.set(`ca/${name}.pem`, pem);
      return [name, { ...pool, tlsCaFile: `/var/task/ca/${name}.pem` }];
    }),
  );
  files.set(BUNDLED_CONFIG_NAME, JSON.stringify({ ...config, pools }));
  return files;
}

/** What every xcr function shares: runtime, architecture, tracing, where the code comes from. */
export const LAMBDA_DEFAULTS = {
  handler: 'handler',
  projectRoot: repoRoot,
  depsLockFilePath: join(repoRoot, 'package-lock.json'),
  runtime: lambda.Runtime.NODEJS_24_X,
  architecture: lambda.Architecture.ARM_64,
  // X-Ray traces of every invocation (the state machines trace too, so a run is one trace map).
  tracing: lambda.Tracing.ACTIVE,
} as const;

/** How every xcr function is bundled (the step functions add the bundled config on top). */
export const BUNDLING_DEFAULTS = {
  forceDockerBundling: false,
  format: OutputFormat.ESM,
  target: 'node24',
  minify: true,
  sourceMap: true,
  // Bundle the AWS SDK too: the runtime's copy is not resolvable from an ES module bundle.
  externalModules: [],
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
};

/** The handler entry file of a function under functions/handlers/lambda/. */
export function lambdaEntry(name: string): string {
  return join(repoRoot, 'functions', 'handlers', 'lambda', `${name}.ts`);
}

interface StepSizing {
  readonly memoryMiB: number;
  readonly timeout: Duration;
}

/**
 * stream-delta moves a whole disk per invocation: the 15-minute maximum and ~1 vCPU (1769 MB) so
 * checksumming keeps up with the ~75 MB/s a VPC function gets. The others make a few XAPI or
 * run-store calls (finish-run reads a 5,000-VM run back in ~10 Query pages).
 */
export const STEP_SIZING: Readonly<Record<StepName, StepSizing>> = {
  'lock-check': { memoryMiB: 512, timeout: Duration.minutes(5) },
  'load-batch': { memoryMiB: 256, timeout: Duration.minutes(1) },
  'snapshot-previous': { memoryMiB: 512, timeout: Duration.minutes(5) },
  'stream-delta': { memoryMiB: 1769, timeout: Duration.minutes(15) },
  'commit-or-rollback': { memoryMiB: 512, timeout: Duration.minutes(10) },
  'record-failure': { memoryMiB: 256, timeout: Duration.minutes(1) },
  'finish-run': { memoryMiB: 256, timeout: Duration.minutes(2) },
};

export interface StepLambdasProps {
  readonly config: XcrConfig;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.ISubnet[];
  readonly securityGroup: ec2.ISecurityGroup;
  readonly environment: Readonly<Record<string, string>>;
  readonly logRetention: logs.RetentionDays;
  readonly removalPolicy: RemovalPolicy;
}

/** One NodejsFunction per workflow step, in the VPC, each with its own role and log group. */
export class StepLambdas extends Construct {
  readonly functions: Readonly<Record<StepName, NodejsFunction>>;
  readonly roles: Readonly<Record<StepName, iam.Role>>;
  readonly logGroups: logs.LogGroup[] = [];

  constructor(scope: Construct, id: string, props: StepLambdasProps) {
    super(scope, id);
    // Defaults applied, secrets only as references: this is what the handlers read at run time.
    const files = bundledFiles(props.config);
    const functions: Partial<Record<StepName, NodejsFunction>> = {};
    const roles: Partial<Record<StepName, iam.Role>> = {};

    for (const step of STEP_NAMES) {
      const logGroup = new logs.LogGroup(this, `${step}-logs`, {
        retention: props.logRetention,
        removalPolicy: props.removalPolicy,
      });
      this.logGroups.push(logGroup);
      const role = new iam.Role(this, `${step}-role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `xcr ${step} step`,
      });
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [logGroup.logGroupArn],
        }),
      );
      role.addToPolicy(
        new iam.PolicyStatement({
          // ENI management for a function in a VPC: these EC2 actions take no resource ARN.
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DescribeSubnets',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      );
      const sizing = STEP_SIZING[step];
      functions[step] = new NodejsFunction(this, step, {
        description: `xcr workflow step ${step}`,
        entry: lambdaEntry(step),
        ...LAMBDA_DEFAULTS,
        memorySize: sizing.memoryMiB,
        timeout: sizing.timeout,
        role,
        logGroup,
        vpc: props.vpc,
        vpcSubnets: { subnets: props.subnets },
        securityGroups: [props.securityGroup],
        environment: {
          ...props.environment,
          XCR_STEP: step,
          [ENV.configFile]: `/var/task/${BUNDLED_CONFIG_NAME}`,
          POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
          POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
          POWERTOOLS_LOG_LEVEL: 'INFO',
          NODE_OPTIONS: '--enable-source-maps',
        },
        bundling: {
          ...BUNDLING_DEFAULTS,
          commandHooks: {
            beforeBundling: () => [],
            beforeInstall: () => [],
            // The config travels inside the bundle: no environment size limit, one file per deploy.
            afterBundling: (_inputDir: string, outputDir: string) => [
              `mkdir -p "${join(outputDir, 'ca')}"`,
              ...[...files].map(
                ([name, content]) =>
                  `echo ${Buffer.from(content).toString('base64')} | base64 -d > "${join(outputDir, name)}"`,
              ),
            ],
          },
        },
      });
      roles[step] = role;
    }
    this.functions = functions as Record<StepName, NodejsFunction>;
    this.roles = roles as Record<StepName, iam.Role>;
  }
}
