/** Drill rules as tables: which VMs and disks a drill sweep removes, what retention keeps. */
import { describe, expect, it } from 'vitest';
import {
  type DrillVdi,
  type DrillVm,
  drillDueAfterRuns,
  formatDrillResult,
  keepDrilled,
  parseDrillResult,
  planDrillSweep,
  pointsToDrill,
  pointsUnderDrill,
} from '../../../../functions/replication/rules/drill.js';

const drillVm = (
  uuid: string,
  run: string,
  o: Partial<DrillVm> = {},
  oc: Record<string, string> = {},
): DrillVm => ({
  ref: `R-${uuid}`,
  uuid,
  name_label: `web (xcr drill ${run})`,
  power_state: 'Halted',
  is_a_snapshot: false,
  ...o,
  other_config: {
    'xcr:job': 'job1',
    'xcr:role': 'drill',
    'xcr:drill-run': run,
    'xcr:drill-of': 'rp-1',
    'xcr:self': uuid,
    ...oc,
  },
});
const disk = (uuid: string, vms: string[], oc: Record<string, string>): DrillVdi => ({
  ref: `D-${uuid}`,
  uuid,
  vms,
  other_config: oc,
});
const drillDisk = (uuid: string, run: string, vms: string[]) =>
  disk(uuid, vms, { 'xcr:job': 'job1', 'xcr:role': 'drill-disk', 'xcr:drill-run': run, 'xcr:self': uuid });

describe('planDrillSweep', () => {
  const cases: {
    name: string;
    vms: DrillVm[];
    vdis: DrillVdi[];
    liveRun?: string;
    only?: string;
    point?: string;
    vmsOut: string[];
    vdisOut: string[];
  }[] = [
    {
      name: 'a crashed drill: its running clone and its disk',
      vms: [drillVm('c1', 'd1', { power_state: 'Running' })],
      vdis: [drillDisk('k1', 'd1', ['R-c1'])],
      vmsOut: ['c1'],
      vdisOut: ['k1'],
    },
    {
      name: 'the live drill is left alone',
      vms: [drillVm('c1', 'd1')],
      vdis: [drillDisk('k1', 'd1', ['R-c1'])],
      liveRun: 'd1',
      vmsOut: [],
      vdisOut: [],
    },
    {
      name: 'teardown: only its own run',
      vms: [drillVm('c1', 'd1'), drillVm('c2', 'd2')],
      vdis: [drillDisk('k1', 'd1', ['R-c1']), drillDisk('k2', 'd2', ['R-c2'])],
      only: 'd2',
      vmsOut: ['c2'],
      vdisOut: ['k2'],
    },
    {
      name: "a user's clone of a drill clone (foreign self) is never touched",
      vms: [drillVm('u1', 'd1', {}, { 'xcr:self': 'c1' })],
      vdis: [disk('k9', ['R-u1'], { 'xcr:job': 'job1', 'xcr:role': 'drill-disk', 'xcr:self': 'k1' })],
      vmsOut: [],
      vdisOut: [],
    },
    {
      name: "another job's drill clone is never touched",
      vms: [drillVm('c1', 'd1', {}, { 'xcr:job': 'job2' })],
      vdis: [],
      vmsOut: [],
      vdisOut: [],
    },
    {
      name: 'a pending clone (recovery point keys, pending name) and the disks only it uses',
      vms: [
        drillVm(
          'p1',
          'd3',
          { name_label: '[xcr-drill:job1:d3] pending clone' },
          { 'xcr:role': 'recovery-point', 'xcr:self': 'rp-1' },
        ),
      ],
      vdis: [
        disk('k3', ['R-p1'], { 'xcr:job': 'job1', 'xcr:role': 'replica-disk', 'xcr:self': 'rpdisk' }),
        disk('shared', ['R-p1', 'R-other'], {
          'xcr:job': 'job1',
          'xcr:role': 'replica-disk',
          'xcr:self': 'shared',
        }),
      ],
      vmsOut: ['p1'],
      vdisOut: ['k3'],
    },
    {
      name: "an orphan drill disk (its clone destroyed, its own VDI.destroy failed) of a dead drill goes; the live drill's stays",
      vms: [],
      vdis: [
        drillDisk('k1', 'd1', []),
        drillDisk('k2', 'd2', []),
        disk('x', [], { 'xcr:job': 'job1', 'xcr:role': 'drill-disk', 'xcr:self': 'k1' }),
      ],
      liveRun: 'd2',
      vmsOut: [],
      vdisOut: ['k1'],
    },
    {
      name: 'a disk of a drill clone a user attached elsewhere stays',
      vms: [drillVm('c1', 'd1')],
      vdis: [drillDisk('k1', 'd1', ['R-c1', 'R-user'])],
      vmsOut: ['c1'],
      vdisOut: [],
    },
    {
      name: 'a recovery point, even with a pending-looking name of another job, stays',
      vms: [
        drillVm(
          'p2',
          'd3',
          { name_label: '[xcr-drill:job2:d3] pending clone' },
          { 'xcr:role': 'recovery-point', 'xcr:self': 'rp-1' },
        ),
      ],
      vdis: [],
      vmsOut: [],
      vdisOut: [],
    },
    {
      name: "one point's teardown: its clone (tagged or pending) and its disks, never a sibling's of the same drill",
      vms: [
        drillVm('c1', 'd1'),
        drillVm('c2', 'd1', {}, { 'xcr:drill-of': 'rp-2' }),
        drillVm(
          'p1',
          'd1',
          { name_label: '[xcr-drill:job1:d1] pending clone' },
          { 'xcr:role': 'recovery-point', 'xcr:self': 'rp-1' },
        ),
      ],
      vdis: [drillDisk('k1', 'd1', ['R-c1']), drillDisk('k2', 'd1', ['R-c2']), drillDisk('k0', 'd1', [])],
      only: 'd1',
      point: 'rp-1',
      vmsOut: ['c1', 'p1'],
      vdisOut: ['k1'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const plan = planDrillSweep({
        jobId: 'job1',
        liveRun: c.liveRun,
        only: c.only,
        point: c.point,
        vms: c.vms,
        vdis: c.vdis,
      });
      expect(plan.vms.map((v) => v.uuid)).toEqual(c.vmsOut);
      expect(plan.vdis.map((v) => v.uuid)).toEqual(c.vdisOut);
    });
  }
});

describe('retention with drills', () => {
  it('keeps a point a verified drill clone exists for, not one a copy claims', () => {
    const under = pointsUnderDrill(
      [drillVm('c1', 'd1'), drillVm('u1', 'd1', {}, { 'xcr:self': 'c1', 'xcr:drill-of': 'rp-2' })],
      'job1',
    );
    expect([...under]).toEqual(['rp-1']);
    const plan = keepDrilled(
      { keep: [{ uuid: 'rp-3' }], delete: [{ uuid: 'rp-1' }, { uuid: 'rp-2' }] },
      under,
    );
    expect(plan).toEqual({ keep: [{ uuid: 'rp-3' }, { uuid: 'rp-1' }], delete: [{ uuid: 'rp-2' }] });
  });
});

describe('pointsToDrill', () => {
  const p = (uuid: string, vm: string) => ({ uuid, other_config: { 'xcr:vm': vm } });
  const all = [p('a2', 'A'), p('b2', 'B'), p('a1', 'A'), p('b1', 'B')];
  it.each([
    [{}, ['a2', 'b2']],
    [{ vm: 'B' }, ['b2']],
    [{ point: 'a1' }, ['a1']],
    [{ point: 'zz' }, []],
  ])('%j → %j', (o, out) => {
    expect(pointsToDrill(all, o).map((x) => x.uuid)).toEqual(out);
  });
});

describe('the xcr:drill value', () => {
  it.each([
    { passed: true as const, at: '2026-12-01T10:00:00.000Z', bootSeconds: 12.5 },
    { passed: false as const, at: '2026-12-01T10:00:00.000Z', reason: 'check: timed out: no: tools' },
  ])('round-trips %j', (r) => {
    expect(parseDrillResult(formatDrillResult(r))).toEqual(r);
  });
  it('is undefined for a missing or foreign value', () => {
    expect(parseDrillResult(undefined)).toBeUndefined();
    expect(parseDrillResult('yes')).toBeUndefined();
  });
});

describe('drillDueAfterRuns (drill.every { afterRuns })', () => {
  const p = (vm: string, drill?: string) => ({
    other_config: { 'xcr:vm': vm, ...(drill ? { 'xcr:drill': drill } : {}) },
  });
  const passed = 'passed 2026-12-01T10:00:00.000Z 3s';
  const failed = 'failed 2026-12-01T10:00:00.000Z: check: no tools';
  it.each([
    { name: 'no point yet', points: [], n: 1, due: false },
    { name: 'first run, every run', points: [p('A')], n: 1, due: true },
    { name: '1 of 2 runs', points: [p('A')], n: 2, due: false },
    { name: '2 runs, never drilled', points: [p('A'), p('A')], n: 2, due: true },
    { name: 'the newest is drilled', points: [p('A', passed), p('A')], n: 1, due: false },
    { name: 'one run since a drill', points: [p('A'), p('A', passed)], n: 2, due: false },
    { name: 'two runs since a failed drill', points: [p('A'), p('A'), p('A', failed)], n: 2, due: true },
    { name: 'a foreign value is no drill', points: [p('A'), p('A', 'yes')], n: 2, due: true },
    { name: 'any VM due makes the job due', points: [p('A', passed), p('B'), p('B')], n: 2, due: true },
  ])('$name → due $due', ({ points, n, due }) => {
    expect(drillDueAfterRuns(points, n).due).toBe(due);
  });
});
