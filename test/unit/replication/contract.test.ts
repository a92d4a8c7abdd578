import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../functions/config/load.js';
import { asRunState, parseStepInput } from '../../../functions/replication/contract.js';

const item = {
  jobId: 'web',
  runId: 'xcr-web-1',
  vmUuid: 'vm-1',
  index: 0,
  startedAt: '2026-11-26T18:00:00.000Z',
};
const disk = {
  userdevice: '0',
  sourceVdi: 'vdi-s',
  targetVdi: 'vdi-t',
  kind: 'full',
  virtualSize: 1024,
  bytes: 0,
  done: false,
};
const state = { ...item, disks: [disk], chain: 0, done: false, warnings: [] };

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('step payload parsing', () => {
  it('names the malformed field and the step', () => {
    expect(issuesOf(() => parseStepInput('stream-delta', { ...state, chain: -1 }))).toEqual([
      'chain: Too small: expected number to be >=0',
    ]);
    expect(() => parseStepInput('snapshot-previous', { ...item, vmUuid: '' })).toThrow(
      /snapshot-previous input[\s\S]*vmUuid/,
    );
    expect(
      issuesOf(() => parseStepInput('stream-delta', { ...state, disks: [{ ...disk, kind: 'x' }] }))[0],
    ).toMatch(/^disks\.0\.kind: /);
  });

  it('rejects a key the schema does not declare instead of dropping it', () => {
    const extra = { ...state, disks: [{ ...disk, bootOrder: 1 }] };
    expect(issuesOf(() => parseStepInput('stream-delta', extra))).toEqual([
      'disks.0: Unrecognized key: "bootOrder"',
    ]);
    expect(
      issuesOf(() => parseStepInput('lock-check', { jobId: 'web', scheduledTime: 't', runId: 'r', x: 1 })),
    ).toEqual(['(input): Unrecognized key: "x"']);
  });

  it('keeps what Step Functions adds to a caught error', () => {
    const failure = { Error: 'XcrPermanentError', Cause: '{"errorMessage":"x"}', extra: true };
    expect(parseStepInput('commit-or-rollback', { ...item, failure })).toEqual({ ...item, failure });
  });

  it('commit-or-rollback takes a run state or a failed Map item, and reports the closer one', () => {
    const failed = parseStepInput('commit-or-rollback', { ...item, failure: { Error: 'E' } });
    expect(asRunState(failed)).toEqual({
      ...item,
      failure: { Error: 'E' },
      disks: [],
      chain: 0,
      done: false,
      warnings: [],
    });
    expect(asRunState(parseStepInput('commit-or-rollback', state))).toEqual(state);
    // A failed item without its vmUuid: the message names vmUuid, not the run state's missing fields.
    const { vmUuid: _, ...noVm } = item;
    expect(
      issuesOf(() => parseStepInput('commit-or-rollback', { ...noVm, failure: { Error: 'E' } })),
    ).toEqual(['vmUuid: Invalid input: expected string, received undefined']);
  });
});
