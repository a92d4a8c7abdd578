import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../functions/config/load.js';
import { configSchema } from '../../../functions/config/schema.js';
import { closestKey, knownKeys } from '../../../functions/config/suggest.js';

const issues = (input: unknown): string[] => {
  try {
    parseConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
};

describe('unknown config keys', () => {
  it('finds the keys a nested object accepts, through records, arrays and unions', () => {
    expect(knownKeys(configSchema, ['jobs', 0])).toContain('retention');
    expect(knownKeys(configSchema, ['pools', 'any-name'])).toContain('tlsCaFile');
    expect(knownKeys(configSchema, ['jobs', 0, 'destination'])).toEqual(
      expect.arrayContaining(['pool', 'sr']),
    );
  });

  it.each([
    ['retension', 'retention'],
    ['Retention', 'retention'],
    ['usrname', 'username'],
    ['tlsCAFile', 'tlsCaFile'],
    ['completely-different', undefined],
  ])('%s → %s', (typo, expected) => {
    expect(closestKey(typo, ['retention', 'username', 'tlsCaFile', 'schedule'])).toBe(expected);
  });

  it('names the misspelt key’s path and the closest key, or lists the known ones', () => {
    const got = issues({ version: 1, pools: {}, jobs: [], verison: 1, zzzzzzzzzz: 2 });
    expect(got).toContain('verison: unknown key; did you mean `version`?');
    expect(got.find((i) => i.startsWith('zzzzzzzzzz'))).toMatch(/known keys: .*version.*pools.*jobs/);
  });
});
