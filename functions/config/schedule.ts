/**
 * EventBridge Scheduler schedule expressions, checked the way Scheduler checks them at deploy time,
 * so that `xcr validate` and synth refuse what `cdk deploy` would: the six-field cron grammar
 * (minutes hours day-of-month month day-of-week year), exactly one of the two day fields `?`, the
 * wildcards each field allows (L and W in day-of-month; L and # in day-of-week, # alone), IANA time
 * zones, and the project's own floors between two runs, computed from the expression: 10 minutes for
 * vhd jobs and drills, 1 minute (Scheduler's own smallest rate) for cbt and auto jobs, whose runs
 * move only changed 64 KiB extents.
 * Pure: no AWS, no clock.
 */
import { editDistance } from './suggest.js';

/** Floor of vhd jobs and drills: a vhd delta re-reads whole 2 MiB blocks and one stream per disk. */
export const MIN_INTERVAL_MIN = 10;
/** Floor of cbt and auto jobs: EventBridge Scheduler's smallest rate, rate(1 minute). */
export const MIN_INTERVAL_CBT_MIN = 1;
export const MAX_INTERVAL_MIN = 24 * 60;

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
  /** Wildcards beyond `,` `-` `*`. */
  readonly slash: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

const FIELDS: readonly FieldSpec[] = [
  { name: 'minutes', min: 0, max: 59, slash: true },
  { name: 'hours', min: 0, max: 23, slash: true },
  { name: 'day-of-month', min: 1, max: 31, slash: true },
  { name: 'month', min: 1, max: 12, names: MONTHS, slash: true },
  { name: 'day-of-week', min: 1, max: 7, names: DAYS, slash: false },
  { name: 'year', min: 1970, max: 2199, slash: true },
];

/** A parsed day-of-month: plain values, or one of the special forms. */
type DayOfMonth =
  | { kind: 'any' }
  | { kind: 'values'; values: Set<number> }
  | { kind: 'last' }
  | { kind: 'weekday'; day: number | 'last' };
type DayOfWeek =
  | { kind: 'any' }
  | { kind: 'values'; values: Set<number> }
  | { kind: 'last'; day: number }
  | { kind: 'nth'; day: number; nth: number };

export interface CronSchedule {
  minutes: number[];
  hours: number[];
  dayOfMonth: DayOfMonth;
  months: Set<number>;
  dayOfWeek: DayOfWeek;
  years: Set<number>;
}

export class ScheduleSyntaxError extends Error {
  override readonly name = 'ScheduleSyntaxError';
}

function fail(field: FieldSpec, value: string, why: string): never {
  throw new ScheduleSyntaxError(`${field.name} field "${value}": ${why}`);
}

function number(field: FieldSpec, token: string, whole: string): number {
  const named = field.names?.indexOf(token.toUpperCase()) ?? -1;
  if (named >= 0) return named + 1;
  if (!/^\d+$/.test(token)) {
    const allowed = field.names ? ` or ${field.names[0]}-${field.names.at(-1)}` : '';
    fail(field, whole, `"${token}" is not a value (${field.min}-${field.max}${allowed})`);
  }
  const n = Number(token);
  if (n < field.min || n > field.max) fail(field, whole, `${n} is outside ${field.min}-${field.max}`);
  return n;
}

/** `,` lists of `*`, `n`, `a-b`, with `/step` where the field allows it. */
function values(field: FieldSpec, text: string): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    if (part === '') fail(field, text, 'empty list element (a stray comma)');
    const [range, step, extra] = part.split('/');
    if (extra !== undefined) fail(field, text, `"${part}" has two "/"`);
    if (step !== undefined && !field.slash) fail(field, text, '"/" is not allowed in this field');
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = field.min;
      hi = field.max;
    } else if (range!.includes('-')) {
      const [a, b, more] = range!.split('-');
      if (more !== undefined || !a || !b) fail(field, text, `"${range}" is not a range a-b`);
      lo = number(field, a, text);
      hi = number(field, b, text);
      if (lo > hi)
        fail(
          field,
          text,
          `range ${a}-${b} runs backwards; list both ends, e.g. "${b}-${field.max},${field.min}-${a}"`,
        );
    } else {
      lo = number(field, range!, text);
      // "5/15" = from 5 to the end of the field in steps of 15.
      hi = step !== undefined ? field.max : lo;
    }
    let inc = 1;
    if (step !== undefined) {
      if (!/^\d+$/.test(step) || Number(step) < 1)
        fail(field, text, `step "/${step}" must be a positive integer`);
      inc = Number(step);
    }
    for (let v = lo; v <= hi; v += inc) out.add(v);
  }
  return out;
}

function dayOfMonth(field: FieldSpec, text: string): DayOfMonth {
  if (text === '?') return { kind: 'any' };
  if (text === 'L') return { kind: 'last' };
  if (text === 'LW') return { kind: 'weekday', day: 'last' };
  const w = /^(\d+)W$/.exec(text);
  if (w) return { kind: 'weekday', day: number(field, w[1]!, text) };
  if (/[LW]/.test(text))
    fail(field, text, 'L and W stand alone ("L", "LW", or "<day>W" such as "15W"), never in a list or range');
  return { kind: 'values', values: values(field, text) };
}

function dayOfWeek(field: FieldSpec, text: string): DayOfWeek {
  if (text === '?') return { kind: 'any' };
  if (text === 'L') return { kind: 'values', values: new Set([7]) };
  const last = /^([^L#]+)L$/.exec(text);
  if (last) return { kind: 'last', day: number(field, last[1]!, text) };
  if (text.includes('#')) {
    const nth = /^([^#,-]+)#([1-5])$/.exec(text);
    if (!nth)
      fail(
        field,
        text,
        '"#" takes one day and an occurrence 1-5, alone (e.g. "3#2" = second Tuesday); "3#1,6#3" is two expressions',
      );
    return { kind: 'nth', day: number(field, nth[1]!, text), nth: Number(nth[2]) };
  }
  if (text.includes('L'))
    fail(field, text, 'L stands alone ("L" = Saturday) or after one day ("6L" = last Friday)');
  return { kind: 'values', values: values(field, text) };
}

/** Parses the inside of `cron(...)`; throws ScheduleSyntaxError naming the field and the fix. */
export function parseCron(expr: string): CronSchedule {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 6) {
    throw new ScheduleSyntaxError(
      `${fields.length} fields; EventBridge Scheduler wants six: "minutes hours day-of-month month day-of-week year", e.g. "30 1 * * ? *"`,
    );
  }
  const [mi, ho, dom, mo, dow, yr] = fields as [string, string, string, string, string, string];
  if ((dom === '?') === (dow === '?')) {
    throw new ScheduleSyntaxError(
      dom === '?'
        ? 'day-of-month and day-of-week are both "?"; give one of them a value or "*", e.g. "30 1 * * ? *"'
        : `one of day-of-month ("${dom}") and day-of-week ("${dow}") must be "?", e.g. "${mi} ${ho} ${dom} ${mo} ? ${yr}"`,
    );
  }
  for (const [i, f] of fields.entries()) {
    if (f === '?' && i !== 2 && i !== 4)
      fail(FIELDS[i]!, f, '"?" is only allowed in day-of-month and day-of-week');
  }
  return {
    minutes: [...values(FIELDS[0]!, mi)].sort((a, b) => a - b),
    hours: [...values(FIELDS[1]!, ho)].sort((a, b) => a - b),
    dayOfMonth: dayOfMonth(FIELDS[2]!, dom),
    months: values(FIELDS[3]!, mo),
    dayOfWeek: dayOfWeek(FIELDS[4]!, dow),
    years: values(FIELDS[5]!, yr),
  };
}

const DAY_MS = 86_400_000;

/** Whether the cron fires on a calendar day (UTC date arithmetic on the wall-clock date). */
export function firesOn(cron: CronSchedule, y: number, m: number, d: number): boolean {
  if (!cron.years.has(y) || !cron.months.has(m)) return false;
  const lastDay = new Date(Date.UTC(y, m, 0)).getUTCDate();
  const weekday = new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 1; // 1 = SUN … 7 = SAT
  const dom = cron.dayOfMonth;
  switch (dom.kind) {
    case 'values':
      if (!dom.values.has(d)) return false;
      break;
    case 'last':
      if (d !== lastDay) return false;
      break;
    case 'weekday': {
      const target = Math.min(dom.day === 'last' ? lastDay : dom.day, lastDay);
      const tw = new Date(Date.UTC(y, m - 1, target)).getUTCDay();
      // The weekday nearest the target day, without leaving the month.
      let near = target;
      if (tw === 6) near = target === 1 ? 3 : target - 1;
      else if (tw === 0) near = target === lastDay ? target - 2 : target + 1;
      if (d !== near) return false;
      break;
    }
    case 'any':
      break;
  }
  const dow = cron.dayOfWeek;
  switch (dow.kind) {
    case 'values':
      return dow.values.has(weekday);
    case 'last':
      return weekday === dow.day && d + 7 > lastDay;
    case 'nth':
      return weekday === dow.day && Math.ceil(d / 7) === dow.nth;
    case 'any':
      return true;
  }
}

const HORIZON_END = Date.UTC(2200, 0, 1);

/**
 * The smallest gap in minutes between two consecutive fire times on the wall clock of the
 * schedule's time zone (daylight-saving shifts aside), from `from` to the end of year 2199 (the
 * last year Scheduler accepts); undefined when it never fires in that span.
 */
export function cronMinGapMinutes(cron: CronSchedule, from = Date.UTC(2026, 0, 1)): number | undefined {
  const times = cron.hours.flatMap((h) => cron.minutes.map((m) => h * 60 + m));
  let within = Number.POSITIVE_INFINITY;
  for (let i = 1; i < times.length; i++) within = Math.min(within, times[i]! - times[i - 1]!);
  const firstOfDay = times[0]!;
  const lastOfDay = times.at(-1)!;
  let best = Number.POSITIVE_INFINITY;
  let previousDay: number | undefined;
  let fired = false;
  // Weekdays and leap years repeat every 28 years between 1901 and 2099: scanning 29 selected
  // years after the first fire sees every pattern that can occur in them.
  let yearsScanned = 0;
  for (let t = from; t < HORIZON_END && yearsScanned <= 29; ) {
    const date = new Date(t);
    const year = date.getUTCFullYear();
    if (!cron.years.has(year)) {
      t = Date.UTC(year + 1, 0, 1);
      continue;
    }
    if (date.getUTCMonth() === 11 && date.getUTCDate() === 31 && fired) yearsScanned++;
    if (firesOn(cron, year, date.getUTCMonth() + 1, date.getUTCDate())) {
      fired = true;
      best = Math.min(best, within);
      if (previousDay !== undefined) {
        const days = Math.round((t - previousDay) / DAY_MS);
        best = Math.min(best, days * 1440 - lastOfDay + firstOfDay);
      }
      previousDay = t;
      if (best <= 1) break;
    }
    t += DAY_MS;
  }
  return fired ? best : undefined;
}

let zones: Set<string> | undefined;

/** Time zone names Node's ICU lists, plus the aliases it accepts (e.g. "US/Eastern", "UTC"). */
export function isTimeZone(name: string): boolean {
  zones ??= new Set(Intl.supportedValuesOf('timeZone'));
  if (zones.has(name)) return true;
  try {
    // Intl also accepts any letter case ("europe/paris"); Scheduler wants the IANA spelling.
    const canonical = new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
    return canonical.toLowerCase() === name.toLowerCase() ? canonical === name : /^[A-Z]/.test(name);
  } catch {
    return false;
  }
}

/** The listed time zone closest to a misspelled one. */
export function closestTimeZone(name: string): string {
  zones ??= new Set(Intl.supportedValuesOf('timeZone'));
  let best = 'UTC';
  let bestD = Number.POSITIVE_INFINITY;
  for (const z of zones) {
    const d = editDistance(name, z);
    if (d < bestD) {
      bestD = d;
      best = z;
    }
  }
  return best;
}

const rateUnits: Record<string, number> = {
  minute: 1,
  minutes: 1,
  hour: 60,
  hours: 60,
  day: 1440,
  days: 1440,
};

/** Minutes between runs of a rate expression such as "15 minutes", or undefined when malformed. */
export function rateMinutes(rate: string): number | undefined {
  const m = /^(\d+) (minutes?|hours?|days?)$/.exec(rate.trim());
  if (!m) return undefined;
  return Number(m[1]) * (rateUnits[m[2]!] ?? Number.NaN);
}

/** Problems of a cron schedule (empty = deployable), each a sentence with the fix. */
export function cronProblems(expr: string, floorMin = MIN_INTERVAL_MIN): string[] {
  let cron: CronSchedule;
  try {
    cron = parseCron(expr);
  } catch (err) {
    if (err instanceof ScheduleSyntaxError) return [err.message];
    throw err;
  }
  const gap = cronMinGapMinutes(cron);
  if (gap === undefined)
    return [
      'never fires from 2026 to 2199 (the last year Scheduler accepts); check the day, month and year fields',
    ];
  if (gap < floorMin) return [cronTooOften(gap, floorMin)];
  return [];
}

export function cronTooOften(gap: number, floorMin: number): string {
  const each = floorMin === 1 ? '*' : `0/${floorMin}`;
  return `fires ${plural(gap, 'minute')} apart; runs must be at least ${plural(floorMin, 'minute')} apart (e.g. "${each} * * * ? *")`;
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

/** Smallest number of minutes between two runs of a schedule; undefined when it does not parse. */
export function scheduleGapMinutes(s: { rate: string } | { cron: string }): number | undefined {
  if ('rate' in s) return rateMinutes(s.rate);
  try {
    return cronMinGapMinutes(parseCron(s.cron));
  } catch (err) {
    if (err instanceof ScheduleSyntaxError) return undefined;
    throw err;
  }
}

export function timeZoneProblems(name: string): string[] {
  if (isTimeZone(name)) return [];
  return [`unknown time zone "${name}"; use an IANA name such as "${closestTimeZone(name)}" or "UTC"`];
}
