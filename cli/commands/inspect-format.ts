/**
 * What `xcr run`, `xcr recovery-points` and `xcr status` print on a terminal: laid out to fit 80
 * columns (a recovery point's uuid, which `xcr clone` needs, is printed whole; everything else is
 * shortened or wrapped) and, when there is nothing yet, what to do next. `--json` prints the full
 * records instead.
 */

import type { RecoveryPointInfo } from '../../functions/replication/clone-point.js';
import type { RunResult } from '../../functions/replication/contract.js';
import type { DrillReport } from '../../functions/replication/drill/contract.js';
import { parseDrillResult } from '../../functions/replication/rules/drill.js';
import { mb, table } from './common.js';

export interface RunLine {
  runId: string;
  status: string;
  bytes: number;
  finishedAt: string;
}

export interface VmLine {
  vm: string;
  newestRecoveryPoint: string;
  lagMinutes: number;
  recoveryPoints: number;
  lastDrill: string;
}

export interface JobStatusView {
  jobId: string;
  lastRuns: RunLine[];
  vms: VmLine[];
}

/** `2026-12-01T23:40:05.123Z` → `2026-12-01 23:40Z` (minutes are what an RPO is read in). */
export function shortTime(iso: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return m ? `${m[1]} ${m[2]}Z` : iso;
}

/** `passed …` / `failed …` → `passed` / `failed`; never drilled → `-`. */
export function drillWord(value: string): string {
  const r = parseDrillResult(value);
  return r ? (r.passed ? 'passed' : 'failed') : '-';
}

/** The source VM's name, from the recovery point's "<name> (xcr <job> <time>)". */
function sourceName(rp: RecoveryPointInfo): string {
  return rp.name.replace(/ \(xcr .*\)$/, '');
}

const WIDTH = 80;

function indent(text: string, by = '  '): string {
  return text
    .split('\n')
    .map((l) => `${by}${l}`)
    .join('\n');
}

/** Breaks text at spaces into lines of at most `width` (a longer word keeps its own line). */
export function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}

/** A table whose every row has its detail lines beneath it, wrapped to fit (uuids side by side would not). */
function rowsWithDetails(headers: string[], rows: { cells: string[]; details: string[] }[]): string {
  const [header, ...lines] = table(
    headers,
    rows.map((r) => r.cells),
  ).split('\n');
  const out = [header!];
  rows.forEach((r, i) => {
    out.push(lines[i]!);
    for (const d of r.details) out.push(indent(wrap(d, WIDTH - 6), '  '));
  });
  return indent(out.join('\n'));
}

/**
 * A run's summary: its status and size, then one row per VM with, beneath it, the recovery point it
 * made or its error.
 */
export function renderRun(run: RunResult): string {
  const head = `run ${run.runId}: ${run.status}${run.reason ? ` (${run.reason})` : ''}, ${mb(run.bytes)} MB`;
  if (!run.vms.length) return wrap(head, WIDTH);
  const rows = run.vms.map((v) => ({
    cells: [v.vmUuid, v.status, v.kind ?? '-', mb(v.bytes), (v.durationMs / 1000).toFixed(1)],
    details: [
      v.recoveryPoint ? `recovery point ${v.recoveryPoint}` : `${v.errorCode ?? 'error'}: ${v.message ?? ''}`,
    ],
  }));
  return `${wrap(head, WIDTH)}\n${rowsWithDetails(['SOURCE VM', 'STATUS', 'KIND', 'MB', 'SECONDS'], rows)}`;
}

/** A drill's report: one row per drilled point (source VM, result, boot time), the point and any reason beneath. */
export function renderDrill(r: DrillReport): string {
  const head = `drill ${r.drillRun} of job ${r.jobId}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`;
  if (r.results.length === 0) return wrap(head, WIDTH);
  const rows = r.results.map((x) => ({
    cells: [x.vm, x.passed ? 'passed' : 'failed', x.bootSeconds === undefined ? '-' : String(x.bootSeconds)],
    details: [`recovery point ${x.recoveryPoint}`, ...(x.passed ? [] : [`${x.step}: ${x.reason ?? ''}`])],
  }));
  return `${wrap(head, WIDTH)}\n${rowsWithDetails(['SOURCE VM', 'RESULT', 'BOOT (S)'], rows)}`;
}

export function renderRecoveryPoints(jobId: string, rps: RecoveryPointInfo[], configHint: string): string {
  if (rps.length === 0) {
    return [
      `job ${jobId}: no recovery point yet.`,
      `next: \`xcr run ${configHint} -j ${jobId}\` makes the first one`,
      `      (or wait for the job's schedule), then list them again.`,
    ].join('\n');
  }
  const byVm = new Map<string, RecoveryPointInfo[]>();
  for (const rp of rps) byVm.set(rp.sourceVm, [...(byVm.get(rp.sourceVm) ?? []), rp]);
  const vmCount = byVm.size;
  const blocks = [...byVm].map(([vm, points]) =>
    [
      `${sourceName(points[0]!)}  (source VM ${vm})`,
      indent(
        table(
          ['RECOVERY POINT', 'TIME', 'CHAIN', 'DISKS', 'DRILL'],
          points.map((rp) => [rp.uuid, shortTime(rp.time), rp.chain, rp.disks.length, drillWord(rp.drill)]),
        ),
      ),
    ].join('\n'),
  );
  return [
    `job ${jobId}: ${rps.length} recovery point${rps.length === 1 ? '' : 's'} of ${vmCount} VM${vmCount === 1 ? '' : 's'}, newest first`,
    ...blocks,
    `to use one: xcr clone <RECOVERY POINT> ${configHint} --name "<new VM name>"`,
  ].join('\n\n');
}

export function renderStatus(report: JobStatusView[], configHint: string): string {
  return report
    .map((j) =>
      [
        `job ${j.jobId}`,
        j.lastRuns.length
          ? indent(
              table(
                ['RUN', 'STATUS', 'MB', 'FINISHED'],
                j.lastRuns.map((r) => [r.runId, r.status, mb(r.bytes), shortTime(r.finishedAt)]),
              ),
            )
          : `  no run recorded yet; start one with \`xcr run ${configHint} -j ${j.jobId}\``,
        j.vms.length
          ? indent(
              table(
                ['SOURCE VM', 'NEWEST POINT', 'LAG MIN', 'KEPT', 'DRILL'],
                j.vms.map((v) => [
                  v.vm,
                  shortTime(v.newestRecoveryPoint),
                  v.lagMinutes,
                  v.recoveryPoints,
                  drillWord(v.lastDrill),
                ]),
              ),
            )
          : `  no recovery point yet; the first run of the job makes one per VM`,
      ].join('\n'),
    )
    .join('\n\n');
}
