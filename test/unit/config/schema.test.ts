import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../functions/config/load.js';

const fp = `${'AB:'.repeat(31)}AB`;

function valid() {
  return {
    version: 1,
    pools: {
      src: { url: 'https://10.0.0.10', password: { env: 'SRC_PW' }, tlsFingerprint: fp },
      dst: { url: 'http://10.1.0.10', password: { secret: 'xcr/dst' }, allowPlainHttp: true },
    },
    jobs: [
      {
        id: 'web',
        source: { pool: 'src' },
        destination: { pool: 'dst', sr: { name: 'Local storage' } },
        vms: { tag: 'replicate' },
        schedule: { rate: '15 minutes' },
      },
    ],
  };
}

function issuesOf(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('job config schema', () => {
  it('accepts a valid config and fills defaults', () => {
    const cfg = parseConfig(valid());
    const job = cfg.jobs[0]!;
    expect(job.retention).toBe(3);
    expect(job.fullInterval).toBe(0);
    expect(job.concurrency).toBe(2);
    expect(job.transferMode).toBe('vhd');
    expect(cfg.pools.src!.username).toBe('root');
    expect(cfg.pools.src!.tlsFingerprint).toBe('ab'.repeat(32));
  });

  it('refuses an inline password and says how to reference it', () => {
    const cfg = valid();
    (cfg.pools.src as Record<string, unknown>).password = 'hunter2';
    const issues = issuesOf(cfg);
    expect(issues.join('\n')).toMatch(/pools\.src\.password: .*reference.*env.*secret/);
    expect(issues.join('\n')).not.toContain('hunter2');
  });

  it('names the field of each problem', () => {
    const cfg = valid();
    cfg.jobs[0]!.schedule = { rate: '5 minutes' };
    (cfg.jobs[0] as Record<string, unknown>).retention = 0;
    cfg.jobs[0]!.destination.pool = 'nowhere';
    const text = issuesOf(cfg).join('\n');
    expect(text).toMatch(/jobs\.0\.schedule\.rate: must be between 10 minutes and 24 hours/);
    expect(text).toMatch(/jobs\.0\.retention: keep at least 1/);
    expect(text).toMatch(/jobs\.0\.destination\.pool: unknown pool "nowhere"/);
  });

  it('refuses https without a pinned certificate and http without allowPlainHttp', () => {
    const cfg = valid();
    delete (cfg.pools.src as Record<string, unknown>).tlsFingerprint;
    (cfg.pools.dst as Record<string, unknown>).allowPlainHttp = false;
    const text = issuesOf(cfg).join('\n');
    expect(text).toMatch(/pools\.src\.tlsFingerprint: an https pool needs tlsFingerprint/);
    expect(text).toMatch(/pools\.dst\.url: plain http:\/\/ is refused/);
  });

  it.each([
    ['a'.repeat(40), ''],
    ['web-2', ''],
    ['a'.repeat(41), /jobs\.0\.id: lower-case letters, digits and dashes \(not at either end\), at most 40/],
    ['web-', /jobs\.0\.id: .*not at either end/],
    ['Web', /jobs\.0\.id: lower-case/],
    ['web_servers', /jobs\.0\.id: lower-case/],
  ])('job id %s', (id, expected) => {
    const cfg = valid();
    (cfg.jobs[0] as Record<string, unknown>).id = id;
    if (expected === '') expect(parseConfig(cfg).jobs[0]!.id).toBe(id);
    else expect(issuesOf(cfg).join('\n')).toMatch(expected);
  });

  it('refuses a job name too long for the schedule description, or with control characters', () => {
    const cfg = valid();
    (cfg.jobs[0] as Record<string, unknown>).name = 'x'.repeat(257);
    expect(issuesOf(cfg).join('\n')).toMatch(/jobs\.0\.name: at most 256 characters/);
    (cfg.jobs[0] as Record<string, unknown>).name = 'two\nlines';
    expect(issuesOf(cfg).join('\n')).toMatch(/jobs\.0\.name: no control characters/);
  });
});

describe('drill config', () => {
  const withDrill = (drill: unknown) => {
    const c = valid();
    (c.jobs[0] as Record<string, unknown>).drill = drill;
    return c;
  };
  it('fills defaults: no network, tools check, 10 minutes, one at a time, alarm after 7 days', () => {
    const job = parseConfig(withDrill({ every: { afterRuns: 3 } })).jobs[0]!;
    expect(job.drill).toEqual({
      every: { afterRuns: 3 },
      network: 'none',
      check: 'tools',
      timeoutMinutes: 10,
      concurrency: 1,
      alarmDays: 7,
    });
  });
  it('takes a schedule checked as the job schedule, an isolated network and a xenstore key', () => {
    const job = parseConfig(
      withDrill({
        every: { cron: '0 3 ? * SUN *' },
        network: { name: 'isolated' },
        check: { xenstore: 'vm-data/xcr-drill' },
      }),
    ).jobs[0]!;
    expect(job.drill?.network).toEqual({ name: 'isolated' });
    expect(job.drill?.check).toEqual({ xenstore: 'vm-data/xcr-drill' });
  });
  it.each([
    [{ every: { rate: '1 minutes' } }, /jobs\.0\.drill\.every/],
    [{ every: { afterRuns: 0 } }, /drill\.every/],
    // counted on the points kept: more runs than retention keeps points for could never be counted
    [{ every: { afterRuns: 4 } }, /drill\.every\.afterRuns: at most the job's retention \(3\)/],
    [{ every: { afterRuns: 1 }, alarmDays: 8 }, /drill\.alarmDays: at most 7/],
    [{ every: { afterRuns: 1 }, check: { xenstore: 'data/x' } }, /drill\.check.*vm-data/],
    [{ every: { afterRuns: 1 }, check: 'ping' }, /drill\.check.*"tools"/],
    [{ every: { afterRuns: 1 }, timeoutMinutes: 500 }, /drill\.timeoutMinutes.*120/],
    [{ every: { afterRuns: 1 }, extra: 1 }, /drill.*extra/],
  ])('refuses %j naming the field', (drill, message) => {
    expect(issuesOf(withDrill(drill)).join('\n')).toMatch(message);
  });
});
