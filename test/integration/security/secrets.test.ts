import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XcrStack } from '../../../infra/stack.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';

/**
 * Secret hygiene: a whole workflow runs with known credentials (a success, a failure and a
 * skipped run), and everything that leaves a step — state inputs and outputs, logs, run events,
 * error messages — and the synthesized template are searched for the passwords and for every
 * session ref the pools handed out.
 */
let sites: Sites;
const captured: string[] = [];
const sessionRefs = new Set<string>();

function collectSessions(): void {
  for (const pool of [sites.source, sites.destination]) {
    for (const [ref] of pool.test.objects('session')) sessionRefs.add(ref);
  }
}

beforeAll(async () => {
  sites = await startSites({
    vms: [
      { name_label: 'web', disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: MiB, seed: 1 }] }] },
    ],
  });
  const poll = setInterval(collectSessions, 2);
  const observe = (event: unknown) => {
    collectSessions();
    captured.push(JSON.stringify(event));
  };
  try {
    captured.push(JSON.stringify(await sites.run('secrets-ok', undefined, observe)));
    // A failing run: every snapshot attempt fails, so errors and the rollback path are captured too.
    sites.source.test.injectFault({
      method: 'VM.snapshot',
      count: 100,
      error: ['SR_BACKEND_FAILURE_44', '', 'There is insufficient space', ''],
    });
    captured.push(JSON.stringify(await sites.run('secrets-failed', undefined, observe)));
    sites.source.test.clearFaults();
    // Sessions that expire mid-run are logged into again: the new refs must not leak either.
    sites.source.test.expireSessions();
    captured.push(JSON.stringify(await sites.run('secrets-relogin', undefined, observe)));
  } finally {
    clearInterval(poll);
  }
  captured.push(...sites.logs.map((l) => JSON.stringify(l)));
});

afterAll(async () => {
  await sites?.close();
});

describe('secret hygiene', () => {
  it('captured a real run: states, logs, a failure and sessions', () => {
    const text = captured.join('\n');
    expect(text).toContain('"status":"succeeded"');
    expect(text).toContain('SR_BACKEND_FAILURE_44');
    expect(text).toContain('snapshot-previous');
    expect(sites.logs.length).toBeGreaterThan(5);
    expect(sessionRefs.size).toBeGreaterThanOrEqual(4);
  });

  it('no password and no session ref in execution data, logs, events or errors', () => {
    const text = captured.join('\n');
    for (const secret of [sites.source.password, sites.destination.password]) {
      expect(secret.length).toBeGreaterThan(6);
      expect(text).not.toContain(secret);
    }
    for (const ref of sessionRefs) expect(text).not.toContain(ref.replace(/^OpaqueRef:/, ''));
  });

  it('no password in the synthesized CloudFormation template', () => {
    process.env.XCR_TEST_A = sites.source.password;
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new XcrStack(app, 'XcrSecrets', {
      config: {
        ...sites.config,
        pools: {
          a: { ...sites.config.pools.a!, password: { secret: 'xcr/site-a' } },
          b: { ...sites.config.pools.b!, password: { secret: 'xcr/site-b' } },
        },
        deployment: {
          vpcId: 'vpc-0abc',
          subnetIds: ['subnet-0abc'],
          availabilityZones: ['eu-west-1a'],
          xapiCidrs: ['10.0.0.0/24'],
        },
      },
    });
    const template = JSON.stringify(Template.fromStack(stack).toJSON());
    expect(template).toContain('xcr/site-a');
    expect(template).not.toContain(sites.source.password);
    expect(template).not.toContain(sites.destination.password);
    delete process.env.XCR_TEST_A;
  });
});
