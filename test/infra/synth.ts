import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { XcrConfig } from '../../functions/config/schema.js';
import { XcrStack } from '../../infra/stack.js';

export interface Synthesized {
  stack: XcrStack;
  template: Template;
  json: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
  /** cdk-nag AwsSolutions findings that were not acknowledged: "<rule> <logical id>". */
  nagFindings: string[];
}

/** Synthesizes the stack in-process with bundling skipped (no esbuild, ~3 s) and runs cdk-nag on it. */
export function synthesize(config: XcrConfig, opts: { createVpcEndpoints?: boolean } = {}): Synthesized {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new XcrStack(app, 'XcrTest', {
    config,
    ...(opts.createVpcEndpoints !== undefined ? { createVpcEndpoints: opts.createVpcEndpoints } : {}),
    env: { account: '123456789012', region: 'eu-west-1' },
  });
  const template = Template.fromStack(stack);
  const report = new AwsSolutionsChecks(app).validateScope(stack);
  const nagFindings = report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} ${r.resourceLogicalId}`),
  );
  return { stack, template, json: template.toJSON() as Synthesized['json'], nagFindings };
}
