/** The drill payloads: strict, every field named in the error, what Step Functions writes passed through. */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../functions/config/load.js';
import { parseDrillInput } from '../../../functions/replication/drill/contract.js';

const item = { jobId: 'web', drillRun: 'd-1', recoveryPoint: 'rp-1', vm: 'vm-1' };

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('drill payload parsing', () => {
  it('accepts each step’s input as the state machine builds it', () => {
    expect(
      parseDrillInput('select-points', { drillRun: 'd-1', request: { jobId: 'web', afterRun: 'r-1' } }),
    ).toEqual({
      drillRun: 'd-1',
      request: { jobId: 'web', afterRun: 'r-1' },
    });
    const failed = {
      ...item,
      clone: 'c-1',
      failure: { Error: 'XcrPermanentError', Cause: '{"x":1}', extra: 1 },
    };
    expect(parseDrillInput('teardown', failed)).toEqual(failed);
    expect(
      parseDrillInput('report', {
        drillRun: 'd-1',
        state: { jobId: 'web', failure: { Error: 'States.Runtime' } },
      }).state.failure,
    ).toEqual({ Error: 'States.Runtime' });
  });

  it('rejects an undeclared key and names malformed fields and the step', () => {
    expect(issuesOf(() => parseDrillInput('check', { ...item, sessionRef: 'OpaqueRef:1' }))[0]).toMatch(
      /sessionRef/,
    );
    expect(issuesOf(() => parseDrillInput('boot', { ...item, isolated: false }))).toEqual([
      'isolated: Invalid input: expected true',
    ]);
    expect(() => parseDrillInput('select-points', { drillRun: '', request: {} })).toThrow(
      /select-points input[\s\S]*drillRun[\s\S]*request\.jobId/,
    );
  });
});
