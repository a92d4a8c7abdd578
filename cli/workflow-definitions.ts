import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import type { DeploymentConfig, XcrConfig } from '../functions/config/schema.js';
import { XcrStack } from '../infra/stack.js';
import type { WorkflowDefinitions } from './local-runner.js';

/** Placeholder network (no region, so nothing to check): the definition does not depend on it. */
const PLACEHOLDER_DEPLOYMENT: DeploymentConfig = {
  vpcId: 'vpc-00000000',
  subnetIds: ['subnet-00000000'],
  availabilityZones: ['local-1a'],
  xapiCidrs: ['127.0.0.1/32'],
};
const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': 'XcrLocal',
};

type Resources = Record<string, { Type: string }>;

function stateMachineArn(logicalId: string): string {
  return `arn:aws:states:${PSEUDO['AWS::Region']}:${PSEUDO['AWS::AccountId']}:stateMachine:${logicalId}`;
}

/** Resolves the intrinsics CDK puts into a DefinitionString to placeholder values (ARNs, names). */
export function resolveIntrinsics(value: unknown, resources: Resources): unknown {
  if (typeof value === 'string' || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => resolveIntrinsics(v, resources));
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length === 1) {
    const [key] = keys as [string];
    const arg = obj[key];
    if (key === 'Ref' && typeof arg === 'string') {
      // A state machine's Ref is its ARN: a startExecution task names its child by it.
      if (resources[arg]?.Type === 'AWS::StepFunctions::StateMachine') return stateMachineArn(arg);
      return PSEUDO[arg] ?? arg;
    }
    if (key === 'Fn::GetAtt' && Array.isArray(arg)) {
      const [logicalId, attr] = arg as [string, string];
      if (attr !== 'Arn') return `${logicalId}.${attr}`;
      const type = resources[logicalId]?.Type;
      if (type === 'AWS::Lambda::Function') {
        return `arn:aws:lambda:${PSEUDO['AWS::Region']}:${PSEUDO['AWS::AccountId']}:function:${logicalId}`;
      }
      return `arn:aws:xcr:${PSEUDO['AWS::Region']}:${PSEUDO['AWS::AccountId']}:${logicalId}`;
    }
    if (key === 'Fn::Join' && Array.isArray(arg)) {
      const [sep, parts] = arg as [string, unknown[]];
      return parts.map((p) => String(resolveIntrinsics(p, resources))).join(sep);
    }
    if (key.startsWith('Fn::')) throw new Error(`unsupported intrinsic ${key} in a state machine definition`);
  }
  return Object.fromEntries(keys.map((k) => [k, resolveIntrinsics(obj[k], resources)]));
}

/** The key of a job's drill definition in `synthesizeDefinitions`' map (a job id has no colon). */
export function drillDefinitionKey(jobId: string): string {
  return `drill:${jobId}`;
}

/** The key of a job's failover or failback definition in `synthesizeDefinitions`' map. */
export function failoverDefinitionKey(machine: 'failover' | 'failback', jobId: string): string {
  return `${machine}:${jobId}`;
}

/**
 * The state machine definitions exactly as the CDK app synthesizes them, per job the run and its
 * child machines, its failover (with the batch and transfer machines its final delta runs) and
 * failback under `failoverDefinitionKey`, and the job's drill under `drillDefinitionKey(jobId)` (bundling skipped, so this
 * needs no esbuild and no AWS credentials), with ARNs resolved to placeholders.
 */
export function synthesizeDefinitions(config: XcrConfig): Map<string, WorkflowDefinitions> {
  // A throwaway cloud assembly: nothing is bundled, and nothing is left behind in the temp dir.
  const outdir = mkdtempSync(join(tmpdir(), 'xcr-synth-'));
  let template: { Resources: Resources };
  let stack: XcrStack;
  try {
    const app = new App({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
    stack = new XcrStack(app, 'XcrLocal', {
      // The definition does not depend on the network; a local run must not fail on deployment checks.
      config: { ...config, deployment: PLACEHOLDER_DEPLOYMENT },
      createVpcEndpoints: false,
    });
    template = app.synth().getStackByName(stack.stackName).template as { Resources: Resources };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
  const definitionOf = (jobId: string, sm: CfnElement) => {
    const logicalId = Stack.of(sm).getLogicalId(sm);
    const resource = template.Resources[logicalId] as
      | { Properties?: { DefinitionString?: unknown } }
      | undefined;
    const raw = resolveIntrinsics(resource?.Properties?.DefinitionString, template.Resources);
    if (typeof raw !== 'string')
      throw new Error(`job ${jobId}: no DefinitionString for ${logicalId} in the synthesized template`);
    return { arn: stateMachineArn(logicalId), definition: JSON.parse(raw) as Record<string, unknown> };
  };
  const definitions = new Map<string, WorkflowDefinitions>();
  for (const [jobId, job] of stack.replication.jobs) {
    const cfn = (sm: { node: { defaultChild?: unknown } }) => sm.node.defaultChild as CfnElement;
    const children = [job.batchStateMachine, job.transferStateMachine].map((sm) =>
      definitionOf(jobId, cfn(sm)),
    );
    const childMap = Object.fromEntries(children.map((c) => [c.arn, c.definition]));
    definitions.set(jobId, {
      main: definitionOf(jobId, cfn(job.stateMachine)).definition,
      children: childMap,
    });
    const fo = stack.replication.failovers.workflows.get(jobId)!;
    definitions.set(failoverDefinitionKey('failover', jobId), {
      main: definitionOf(jobId, cfn(fo.failover)).definition,
      children: childMap,
    });
    definitions.set(failoverDefinitionKey('failback', jobId), {
      main: definitionOf(jobId, cfn(fo.failback)).definition,
      children: {},
    });
  }
  for (const [jobId, drill] of stack.replication.drills?.workflows ?? []) {
    const cfn = drill.stateMachine.node.defaultChild as CfnElement;
    definitions.set(drillDefinitionKey(jobId), { main: definitionOf(jobId, cfn).definition, children: {} });
  }
  return definitions;
}
