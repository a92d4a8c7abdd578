import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../functions/config/load.js';
import {
  cronMinGapMinutes,
  cronProblems,
  parseCron,
  timeZoneProblems,
} from '../../../functions/config/schedule.js';

// Each row: an expression, and the message Scheduler's refusal maps to ('' = deployable).
const CRON_TABLE: [string, string | RegExp][] = [
  ['30 1 * * ? *', ''],
  ['0/15 * * * ? *', ''],
  ['0/10 * * * ? *', ''],
  ['*/30 * * * ? *', ''],
  ['0 9-17 ? * MON-FRI *', ''],
  ['0 8 ? * mon,wed,fri *', ''],
  ['0 0 1 JAN,JUL ? *', ''],
  ['0 12 L * ? *', ''],
  ['0 12 LW * ? *', ''],
  ['0 12 15W * ? *', ''],
  ['0 12 ? * L *', ''],
  ['0 12 ? * 6L *', ''],
  ['0 12 ? * 3#2 *', ''],
  ['0 12 29 2 ? *', ''],
  ['0 3 1/2 * ? 2026-2030', ''],
  // Mondays at 00:00 and 23:00: 23 hours apart, never 1 hour (the days are never adjacent).
  ['0 0,23 ? * MON *', ''],
  [
    '30 1 * * * *',
    /one of day-of-month \("\*"\) and day-of-week \("\*"\) must be "\?", e.g. "30 1 \* \* \? \*"/,
  ],
  ['30 1 ? * ? *', /both "\?"; give one of them a value/],
  ['30 1 15 * MON *', /must be "\?"/],
  ['30 1 * * ?', /5 fields; EventBridge Scheduler wants six/],
  ['0 30 1 * * ? *', /7 fields/],
  ['* * * * ? *', /fires 1 minute apart; runs must be at least 10 minutes apart/],
  ['0/5 * * * ? *', /fires 5 minutes apart/],
  ['0,5 12 * * ? *', /fires 5 minutes apart/],
  // 23:55 then 00:00 the next day.
  ['55 23 * * ? *', ''],
  ['55,0 23,0 * * ? *', /fires 5 minutes apart/],
  ['60 1 * * ? *', /minutes field "60": 60 is outside 0-59/],
  ['0 24 * * ? *', /hours field "24": 24 is outside 0-23/],
  ['0 1 32 * ? *', /day-of-month field "32": 32 is outside 1-31/],
  ['0 1 * 13 ? *', /month field "13": 13 is outside 1-12/],
  ['0 1 * FOO ? *', /month field "FOO": "FOO" is not a value \(1-12 or JAN-DEC\)/],
  ['0 1 ? * 8 *', /day-of-week field "8": 8 is outside 1-7/],
  ['0 1 ? * 0 *', /day-of-week field "0": 0 is outside 1-7/],
  ['0 1 * * ? 1969', /year field "1969": 1969 is outside 1970-2199/],
  ['0 1 * * ? 2200', /outside 1970-2199/],
  ['0 1 ? * 1/2 *', /day-of-week field "1\/2": "\/" is not allowed/],
  ['0 1 ? * 3#1,6#3 *', /"3#1,6#3" is two expressions/],
  ['0 1 ? * 3#6 *', /occurrence 1-5/],
  ['0 1 L,15 * ? *', /L and W stand alone/],
  ['0 1 * * ? L', /year field "L"/],
  ['0 1 ? * 1W *', /day-of-week field "1W"/],
  ['0 1 ? * # *', /day-of-week field "#"/],
  ['? 1 * * ? *', /"\?" is only allowed in day-of-month and day-of-week/],
  ['0 20-4 * * ? *', /range 20-4 runs backwards; list both ends, e.g. "4-23,0-20"/],
  ['0 1,,2 * * ? *', /a stray comma/],
  ['0/0 * * * ? *', /step "\/0" must be a positive integer/],
  ['0 12 30 2 ? *', /never fires from 2026 to 2199/],
];

describe('cron expressions as EventBridge Scheduler accepts them', () => {
  it.each(CRON_TABLE)('%s', (expr, expected) => {
    const problems = cronProblems(expr);
    if (expected === '') expect(problems).toEqual([]);
    else {
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(expected);
    }
  });

  it('computes the smallest gap between consecutive fire times', () => {
    expect(cronMinGapMinutes(parseCron('0/15 * * * ? *'))).toBe(15);
    expect(cronMinGapMinutes(parseCron('0 1,13 * * ? *'))).toBe(720);
    expect(cronMinGapMinutes(parseCron('30 1 * * ? *'))).toBe(1440);
    // The 1st and the 3rd of each month: two days apart; the last day of February then March 1st: one day.
    expect(cronMinGapMinutes(parseCron('0 0 1,3 * ? *'))).toBe(2880);
    expect(cronMinGapMinutes(parseCron('0 0 28,1 * ? *'))).toBe(1440);
    expect(cronMinGapMinutes(parseCron('0 6 ? * 2#1 *'))).toBe(28 * 1440);
  });

  it('nearest weekday (W) never leaves the month', () => {
    // 2026-08-01 is a Saturday: 1W is Monday the 3rd, not Friday July 31.
    const cron = parseCron('0 12 1W * ? *');
    expect(cronMinGapMinutes(cron, Date.UTC(2026, 7, 1))).toBeGreaterThan(20 * 1440);
  });
});

const ZONE_TABLE: [string, string | RegExp][] = [
  ['UTC', ''],
  ['Europe/Paris', ''],
  ['America/Argentina/Buenos_Aires', ''],
  ['Etc/GMT+5', ''],
  ['US/Eastern', ''],
  ['Europe/Pariss', /unknown time zone "Europe\/Pariss"; use an IANA name such as "Europe\/Paris" or "UTC"/],
  ['europe/paris', /unknown time zone "europe\/paris"; use an IANA name such as "Europe\/Paris"/],
  ['CEST', /unknown time zone "CEST"/],
  ['+02:00', /unknown time zone/],
  ['', /unknown time zone ""/],
];

describe('time zones', () => {
  it.each(ZONE_TABLE)('%s', (zone, expected) => {
    const problems = timeZoneProblems(zone);
    if (expected === '') expect(problems).toEqual([]);
    else expect(problems[0]).toMatch(expected);
  });
});

describe('xcr validate refuses what cdk deploy would', () => {
  function issues(schedule: unknown, transferMode?: string): string {
    try {
      parseConfig({
        version: 1,
        pools: { p: { url: 'http://10.0.0.1', password: { env: 'P' }, allowPlainHttp: true } },
        jobs: [
          {
            id: 'web',
            source: { pool: 'p' },
            destination: { pool: 'p', sr: { name: 'sr' } },
            vms: { tag: 't' },
            schedule,
            ...(transferMode ? { transferMode } : {}),
          },
        ],
      });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).issues.join('\n');
    }
    return '';
  }

  it('names the field of each schedule problem', () => {
    expect(issues({ cron: '30 1 * * * *' })).toMatch(/^jobs\.0\.schedule\.cron: one of day-of-month/);
    expect(issues({ cron: '* * * * ? *', timezone: 'UTC' })).toMatch(
      /^jobs\.0\.schedule\.cron: fires 1 minute apart/,
    );
    expect(issues({ cron: '30 1 * * ? *', timezone: 'Europe/Pariss' })).toMatch(
      /^jobs\.0\.schedule\.timezone: unknown time zone "Europe\/Pariss"/,
    );
    expect(issues({ rate: '5 minutes' })).toMatch(/^jobs\.0\.schedule\.rate: must be between 10 minutes/);
    expect(issues({ cron: '30 1 * * ? *', timezone: 'Europe/Paris' })).toBe('');
  });

  // Each row: schedule, transfer mode (undefined = the default vhd), and the refusal ('' = deployable).
  const FLOOR_TABLE: [unknown, string | undefined, string | RegExp][] = [
    [{ rate: '1 minute' }, 'cbt', ''],
    [{ rate: '1 minutes' }, 'auto', ''],
    [{ rate: '2 minutes' }, 'cbt', ''],
    [{ cron: '* * * * ? *' }, 'cbt', ''],
    [{ cron: '0/5 * * * ? *' }, 'auto', ''],
    [{ rate: '10 minutes' }, 'vhd', ''],
    [{ rate: '10 minutes' }, undefined, ''],
    [{ rate: '0 minutes' }, 'cbt', /^jobs\.0\.schedule\.rate: must be between 1 minute and 24 hours/],
    [{ rate: '25 hours' }, 'cbt', /^jobs\.0\.schedule\.rate: must be between 1 minute and 24 hours/],
    [
      { rate: '1 minute' },
      undefined,
      /^jobs\.0\.schedule\.rate: must be between 10 minutes and 24 hours for transferMode "vhd"; set "transferMode": "cbt" or "auto"/,
    ],
    [{ rate: '9 minutes' }, 'vhd', /^jobs\.0\.schedule\.rate: .*transferMode "vhd"/],
    [
      { cron: '0/5 * * * ? *' },
      'vhd',
      /^jobs\.0\.schedule\.cron: fires 5 minutes apart; runs must be at least 10 minutes apart \(e\.g\. "0\/10 \* \* \* \? \*"\) for transferMode "vhd"; set "transferMode": "cbt"/,
    ],
  ];
  it.each(FLOOR_TABLE)('%j in mode %s', (schedule, mode, expected) => {
    const text = issues(schedule, mode);
    if (expected === '') expect(text).toBe('');
    else expect(text).toMatch(expected);
  });

  it('holds drill schedules to 10 minutes whatever the transfer mode', () => {
    expect(cronProblems('* * * * ? *')).toEqual([
      'fires 1 minute apart; runs must be at least 10 minutes apart (e.g. "0/10 * * * ? *")',
    ]);
    expect(cronProblems('* * * * ? *', 1)).toEqual([]);
  });
});
