import { describe, expect, it } from 'vitest';
import { describeRemoved } from '../../../cli/commands/failover.js';
import {
  renderDrill,
  renderRecoveryPoints,
  renderRun,
  renderStatus,
  shortTime,
  wrap,
} from '../../../cli/commands/inspect-format.js';
import type { RecoveryPointInfo } from '../../../functions/replication/clone-point.js';
import { listed } from '../../../functions/replication/failover/contract.js';

const VM_A = '6f1c2b9e-0d4a-4c55-9a0e-3b8f7d2e1a01';
const VM_B = 'a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d';
const rp = (uuid: string, vm: string, name: string, time: string, drill = ''): RecoveryPointInfo => ({
  uuid,
  name: `${name} (xcr web ${time})`,
  jobId: 'web',
  sourceVm: vm,
  time,
  chain: 11,
  drill,
  disks: [
    { userdevice: '0', vdi: 'v0', virtualSize: 1 },
    { userdevice: '1', vdi: 'v1', virtualSize: 1 },
  ],
});
const points = [
  rp(
    'c0ffee00-1111-4222-8333-444455556666',
    VM_A,
    'a-rather-long-vm-name-01',
    '2026-12-01T23:40:05.123Z',
    'passed 2026-12-01T23:45:00.000Z 12.5s',
  ),
  rp('c0ffee00-1111-4222-8333-444455556667', VM_A, 'a-rather-long-vm-name-01', '2026-12-01T23:30:05.123Z'),
  rp(
    'c0ffee00-1111-4222-8333-444455556668',
    VM_B,
    'db-01',
    '2026-12-01T23:40:07.000Z',
    'failed 2026-12-01T23:46:00.000Z: check: timed out',
  ),
];
const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

describe('recovery-points and status on an 80-column terminal', () => {
  it('shortens times to the minute', () => {
    expect(shortTime('2026-12-01T23:40:05.123Z')).toBe('2026-12-01 23:40Z');
    expect(shortTime('not a time')).toBe('not a time');
  });

  it('lists recovery points by source VM, whole uuids, within 80 columns, with the next command', () => {
    const out = renderRecoveryPoints('web', points, '-c xcr.config.json');
    expect(widest(out)).toBeLessThanOrEqual(80);
    expect(out).toContain('job web: 3 recovery points of 2 VMs, newest first');
    expect(out).toContain(`a-rather-long-vm-name-01  (source VM ${VM_A})`);
    for (const p of points) expect(out).toContain(p.uuid);
    expect(out).toMatch(/c0ffee00-1111-4222-8333-444455556666\s+2026-12-01 23:40Z\s+11\s+2\s+passed/);
    expect(out).toMatch(/c0ffee00-1111-4222-8333-444455556668\s+2026-12-01 23:40Z\s+11\s+2\s+failed/);
    expect(out).toContain('to use one: xcr clone <RECOVERY POINT> -c xcr.config.json');
  });

  it('says what to do when a job has no recovery point yet', () => {
    const out = renderRecoveryPoints('web', [], '-c xcr.config.json');
    expect(out).toContain('job web: no recovery point yet.');
    expect(out).toContain('`xcr run -c xcr.config.json -j web`');
    expect(widest(out)).toBeLessThanOrEqual(80);
  });

  it('status fits 80 columns and says what to do when nothing ran yet', () => {
    const busy = renderStatus(
      [
        {
          jobId: 'web',
          lastRuns: [
            {
              runId: 'web-2026-12-01T23-40-00-000Z',
              status: 'partial',
              bytes: 123_456_789_012,
              finishedAt: '2026-12-01T23:41:00.000Z',
            },
          ],
          vms: [
            {
              vm: VM_A,
              newestRecoveryPoint: '2026-12-01T23:40:05.123Z',
              lagMinutes: 12345,
              recoveryPoints: 3,
              lastDrill: 'passed 2026-12-01T23:45:00.000Z 12.5s',
            },
          ],
        },
      ],
      '-c xcr.config.json',
    );
    expect(widest(busy)).toBeLessThanOrEqual(80);
    expect(busy).toMatch(/web-2026-12-01T23-40-00-000Z\s+partial\s+123456\.8\s+2026-12-01 23:41Z/);
    expect(busy).toMatch(new RegExp(`${VM_A}\\s+2026-12-01 23:40Z\\s+12345\\s+3\\s+passed`));

    const empty = renderStatus([{ jobId: 'web', lastRuns: [], vms: [] }], '-c xcr.config.json');
    expect(empty).toContain('start one with `xcr run -c xcr.config.json -j web`');
    expect(empty).toContain('no recovery point yet; the first run of the job makes one per VM');
    expect(widest(empty)).toBeLessThanOrEqual(80);
  });

  it('a run summary fits 80 columns: one row per VM, its recovery point or its wrapped error beneath', () => {
    const message =
      'VDI.copy of disk 1 failed: the destination SR has 1.2 GiB free and the disk needs 40.0 GiB; free space on the SR or choose another one in destination.sr';
    const out = renderRun({
      jobId: 'web',
      runId: 'web-20261201T234000000Z',
      status: 'partial',
      startedAt: '2026-12-01T23:40:00.000Z',
      finishedAt: '2026-12-01T23:41:00.000Z',
      bytes: 123_456_789_012,
      vmCount: 2,
      succeeded: 1,
      failed: 1,
      failures: [{ vmUuid: VM_B, errorCode: 'SR_FULL', message }],
      vms: [
        {
          vmUuid: VM_A,
          status: 'succeeded',
          kind: 'full',
          bytes: 123_456_789_012,
          durationMs: 61_234,
          recoveryPoint: 'c0ffee00-1111-4222-8333-444455556666',
        },
        { vmUuid: VM_B, status: 'failed', bytes: 0, durationMs: 900, errorCode: 'SR_FULL', message },
      ],
    });
    expect(widest(out)).toBeLessThanOrEqual(80);
    const lines = out.split('\n');
    expect(lines[0]).toBe('run web-20261201T234000000Z: partial, 123456.8 MB');
    expect(lines[1]).toMatch(/^ {2}SOURCE VM\s+STATUS\s+KIND\s+MB\s+SECONDS$/);
    expect(lines[2]).toMatch(new RegExp(`^ {2}${VM_A}\\s+succeeded\\s+full\\s+123456\\.8\\s+61\\.2$`));
    expect(lines[3]).toBe('    recovery point c0ffee00-1111-4222-8333-444455556666');
    expect(lines[4]).toMatch(new RegExp(`^ {2}${VM_B}\\s+failed\\s+-\\s+0\\.0\\s+0\\.9$`));
    const error = lines.slice(5);
    expect(error.length).toBeGreaterThan(1); // wrapped, not cut
    for (const l of error) expect(l).toMatch(/^ {4}\S/);
    expect(error.map((l) => l.trim()).join(' ')).toBe(`SR_FULL: ${message}`);
  });

  it('a run without VMs (skipped) is its one line', () => {
    const out = renderRun({
      jobId: 'web',
      runId: 'web-20261201T234000000Z',
      status: 'skipped',
      reason: 'another run holds the lease',
      vmCount: 0,
      succeeded: 0,
      failed: 0,
      failures: [],
      startedAt: '2026-12-01T23:40:00.000Z',
      finishedAt: '2026-12-01T23:40:00.100Z',
      bytes: 0,
      vms: [],
    });
    expect(out).toBe('run web-20261201T234000000Z: skipped (another run holds the lease), 0.0 MB');
  });

  it('wraps at spaces and keeps a word longer than the width whole', () => {
    expect(wrap('aa bb cc', 5)).toBe('aa bb\ncc');
    expect(wrap('a 0123456789 b', 5)).toBe('a\n0123456789\nb');
  });

  it('a drill report fits 80 columns: source VM, result and boot time, the point and any reason beneath', () => {
    const reason =
      'DRILL_CHECK_TIMEOUT: timed out after 10 minutes waiting for the guest tools to report an OS version';
    const out = renderDrill({
      jobId: 'web',
      drillRun: 'web-drill-20261201T234000000Z',
      status: 'failed',
      results: [
        {
          recoveryPoint: 'c0ffee00-1111-4222-8333-444455556666',
          vm: VM_A,
          passed: true,
          bootSeconds: 31.4,
          removed: [],
        },
        {
          recoveryPoint: 'c0ffee00-1111-4222-8333-777788889999',
          vm: VM_B,
          passed: false,
          step: 'check',
          reason,
          removed: [],
        },
      ],
      removed: [],
    });
    expect(widest(out)).toBeLessThanOrEqual(80);
    const lines = out.split('\n');
    expect(lines[0]).toBe('drill web-drill-20261201T234000000Z of job web: failed');
    expect(lines[1]).toMatch(/^ {2}SOURCE VM\s+RESULT\s+BOOT \(S\)$/);
    expect(lines[2]).toMatch(new RegExp(`^ {2}${VM_A}\\s+passed\\s+31\\.4$`));
    expect(lines[3]).toBe('    recovery point c0ffee00-1111-4222-8333-444455556666');
    expect(lines[4]).toMatch(new RegExp(`^ {2}${VM_B}\\s+failed\\s+-$`));
    expect(lines[5]).toBe('    recovery point c0ffee00-1111-4222-8333-777788889999');
    expect(
      lines
        .slice(6)
        .map((l) => l.trim())
        .join(' '),
    ).toBe(`check: ${reason}`);
  });
});

describe('describeRemoved', () => {
  const names = (n: number) => Array.from({ length: n }, (_, i) => `VDI ${i}`);
  it.each([
    { n: 0, want: '' },
    { n: 2, want: '\nremoved: VDI 0, VDI 1' },
    { n: 25, want: `\nremoved: ${names(20).join(', ')} and 5 more (named in the logs)` },
  ])('$n removed', ({ n, want }) => {
    expect(describeRemoved(listed(names(n)))).toBe(want);
  });
});
