import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import { App, Validations } from 'aws-cdk-lib';
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
  /** cfn-guard (Control Tower rules) findings that were not acknowledged: "<rule> <construct path>". */
  guardFindings: string[];
}

interface GuardReport {
  pluginReports?: {
    violations?: { ruleName: string; violatingConstructs?: { constructPath?: string }[] }[];
  }[];
}

/**
 * Synthesizes the stack in-process with bundling skipped (no esbuild, ~3 s), runs cdk-nag on it,
 * and the cfn-guard policy validation plugin as `cdk synth` would (its guard binary, offline).
 */
export function synthesize(
  config: XcrConfig,
  opts: {
    createVpcEndpoints?: boolean;
    /** The stack's env; `undefined` = pinned by the config's deployment block. */
    env?: { account?: string; region?: string } | undefined;
    /** Adds constructs to the stack before synthesis. */
    extend?: (stack: XcrStack) => void;
  } = {},
): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'xcr-infra-test-'));
  try {
    const app = new App({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
    Validations.of(app).addPlugins(new CfnGuardValidator());
    const stack = new XcrStack(app, 'XcrTest', {
      config,
      ...(opts.createVpcEndpoints !== undefined ? { createVpcEndpoints: opts.createVpcEndpoints } : {}),
      ...('env' in opts
        ? opts.env
          ? { env: opts.env }
          : {}
        : { env: { account: '123456789012', region: 'eu-west-1' } }),
    });
    opts.extend?.(stack);
    // Synthesize first: later synth calls (Template.fromStack) reuse the assembly without the plugins.
    // The plugin prints its findings and writes a report; whether synth throws depends on the CDK version.
    try {
      app.synth();
    } catch (err) {
      if (!/Validation failed/.test(String(err))) throw err;
    }
    const reportFile = join(outdir, 'validation-report.json');
    const guard = (existsSync(reportFile) ? JSON.parse(readFileSync(reportFile, 'utf8')) : {}) as GuardReport;
    const guardFindings = (guard.pluginReports ?? []).flatMap((p) =>
      (p.violations ?? []).flatMap((v) =>
        (v.violatingConstructs ?? []).map((c) => `${v.ruleName} ${c.constructPath ?? '?'}`),
      ),
    );
    const template = Template.fromStack(stack);
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    const nagFindings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} ${r.resourceLogicalId}`),
    );
    return { stack, template, json: template.toJSON() as Synthesized['json'], nagFindings, guardFindings };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}
