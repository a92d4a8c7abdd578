import { describe, expect, it } from 'vitest';
import {
  copyRecord,
  type FailoverRecord,
  type FoVdi,
  type FoVm,
  failbackRefusal,
  failedOverVms,
  failoverRefusal,
  formatFailoverRecord,
  newVmNotice,
  parseFailoverRecord,
  planFailoverSweep,
  recordedRuns,
  undoRefusal,
} from '../../../../functions/replication/rules/failover.js';

const record = (o: Partial<FailoverRecord> = {}): FailoverRecord => ({
  job: 'j',
  vm: 'src-1',
  run: 'fo-1',
  point: 'rp-1',
  copy: 'copy-1',
  at: '2026-12-01T00:00:00.000Z',
  planned: false,
  state: 'failed-over',
  ...o,
});

const vm = (o: Partial<FoVm> & { uuid: string }): FoVm => ({
  ref: `ref-${o.uuid}`,
  other_config: {},
  power_state: 'Halted',
  is_a_snapshot: false,
  ...o,
});

const copyVm = (r: FailoverRecord, o: Partial<FoVm> = {}): FoVm =>
  vm({
    uuid: r.copy,
    other_config: {
      'xcr:fo-job': r.job,
      'xcr:fo-role': 'copy',
      'xcr:fo-run': r.run,
      'xcr:self': r.copy,
      'xcr:failover': formatFailoverRecord(r),
    },
    ...o,
  });

describe('failover records', () => {
  it('round-trips and rejects what is not a record', () => {
    expect(parseFailoverRecord(formatFailoverRecord(record()))).toEqual(record());
    expect(parseFailoverRecord('not json')).toBeUndefined();
    expect(parseFailoverRecord('{"job":"j"}')).toBeUndefined();
    expect(parseFailoverRecord(undefined)).toBeUndefined();
  });

  it('a copy counts only by its own record: a user clone (foreign self) or a snapshot does not', () => {
    const r = record();
    expect(copyRecord(copyVm(r), 'j')).toEqual(r);
    expect(copyRecord(copyVm(r), 'other')).toBeUndefined();
    expect(copyRecord(copyVm(r, { uuid: 'user-clone' }), 'j')).toBeUndefined();
    expect(copyRecord(copyVm(r, { is_a_snapshot: true }), 'j')).toBeUndefined();
    expect(copyRecord(copyVm(record({ state: 'fencing' })), 'j')).toBeUndefined();
  });
});

describe('failedOverVms (the replication run skips these)', () => {
  const src = (uuid: string, r?: FailoverRecord) =>
    vm({ uuid, other_config: r ? { 'xcr:failover': formatFailoverRecord(r) } : {} });

  it.each([
    ['a recorded copy at DR', [copyVm(record())], [src('src-1')], ['src-1']],
    ['the source says so (DR record lost)', [], [src('src-1', record())], ['src-1']],
    [
      'only fenced (failover in progress or crashed before the copy)',
      [],
      [src('src-1', record({ state: 'fencing' }))],
      [],
    ],
    ['another job', [copyVm(record({ job: 'k' }))], [src('src-1', record({ job: 'k' }))], []],
    ['nothing', [], [src('src-1')], []],
  ])('%s', (_why, destination, source, skipped) => {
    const out = failedOverVms({ jobId: 'j', destination, source });
    expect([...out.keys()]).toEqual(skipped);
    for (const reason of out.values()) expect(reason).toMatch(/^failed over to VM /);
  });

  it('a failback past its cutover whose copy is gone: skipped until the retry finishes it', () => {
    const out = failedOverVms({
      jobId: 'j',
      destination: [],
      source: [src('src-1', record({ state: 'failed-back' }))],
    });
    expect(out.get('src-1')).toMatch(/failback is unfinished .*xcr failback j --vm src-1 --planned/);
  });
});

describe('refusals', () => {
  const base = { jobId: 'j', vm: 'src-1', run: 'fo-2', planned: false, force: false };
  it.each([
    ['double failover', { existing: record() }, 'ALREADY_FAILED_OVER'],
    ['unplanned while the source runs and answers', { sourcePowerState: 'Running' }, 'SOURCE_RUNNING'],
    ['planned with the source gone', { planned: true }, 'SOURCE_UNREACHABLE'],
  ])('%s', (_why, o, code) => {
    expect(failoverRefusal({ ...base, ...o })?.code).toBe(code);
  });
  it.each([
    ['unplanned, source gone', {}],
    ['unplanned, source halted', { sourcePowerState: 'Halted' }],
    ['--force over a running source', { sourcePowerState: 'Running', force: true }],
    ['planned, source running', { planned: true, sourcePowerState: 'Running' }],
    ['the same run resuming', { existing: record({ run: 'fo-2' }), sourcePowerState: 'Halted' }],
    [
      'a recorded copy that never started (its start failed, or --no-start)',
      { existing: record(), existingRunning: false },
    ],
  ])('goes ahead: %s', (_why, o) => {
    expect(failoverRefusal({ ...base, ...o })).toBeUndefined();
  });
  it.each([
    ['without a failover', {}, 'NOT_FAILED_OVER'],
    ['source gone', { copy: record(), sourceReachable: false }, 'SOURCE_UNREACHABLE'],
    [
      'planned while the original runs',
      { copy: record(), planned: true, originalPowerState: 'Running' },
      'ORIGINAL_RUNNING',
    ],
    [
      'without a failover (a fenced-only source record)',
      { finished: record({ state: 'fencing' }) },
      'NOT_FAILED_OVER',
    ],
  ])('failback refused %s', (_why, o, code) => {
    expect(
      failbackRefusal({ jobId: 'j', vm: 'src-1', planned: false, sourceReachable: true, ...o })?.code,
    ).toBe(code);
  });
  it('failback goes ahead without a copy when the source VM says the cutover was done (the retry finishes)', () => {
    expect(
      failbackRefusal({
        jobId: 'j',
        vm: 'src-1',
        planned: true,
        sourceReachable: true,
        finished: record({ state: 'failed-back' }),
      }),
    ).toBeUndefined();
  });
  it.each([
    ['nothing recorded', {}, 'NOT_FAILED_OVER'],
    ['a failback in its cutover', { copy: record({ state: 'cutover' }) }, 'FAILBACK_UNFINISHED'],
    [
      'a failback past its cutover, copy gone',
      { source: record({ state: 'failed-back' }) },
      'FAILBACK_UNFINISHED',
    ],
  ])('undo refused: %s', (_why, o, code) => {
    expect(undoRefusal({ jobId: 'j', vm: 'src-1', ...o })?.code).toBe(code);
  });
  it.each([
    ['a failover', { copy: record(), source: record() }],
    ['only the source record (DR copy lost)', { source: record() }],
  ])('undo goes ahead: %s', (_why, o) => {
    expect(undoRefusal({ jobId: 'j', vm: 'src-1', ...o })).toBeUndefined();
  });
});

describe('planFailoverSweep', () => {
  const own = (uuid: string, role: string, run: string, o: Partial<FoVm> = {}) =>
    vm({
      uuid,
      other_config: { 'xcr:fo-job': 'j', 'xcr:fo-role': role, 'xcr:fo-run': run, 'xcr:self': uuid },
      ...o,
    });
  const disk = (uuid: string, vms: string[], oc: Record<string, string>): FoVdi => ({
    ref: `ref-${uuid}`,
    uuid,
    vms,
    other_config: oc,
  });

  it('removes dead runs’ unrecorded copies and pending clones with their disks, keeps recorded runs and the live one', () => {
    const kept = copyVm(record());
    const dead = own('dead-copy', 'copy', 'fo-0', { power_state: 'Running' });
    const live = own('live-copy', 'copy', 'fo-9');
    const pending = vm({
      uuid: 'pending',
      name_label: '[xcr-failover:j:fo-0] pending copy',
      other_config: { 'xcr:cloned-from': 'rp' },
    });
    const userClone = vm({ uuid: 'user', other_config: { ...kept.other_config } });
    const vms = [kept, dead, live, pending, userClone];
    const vdis = [
      disk('d-dead', ['ref-dead-copy'], { 'xcr:fo-job': 'j', 'xcr:fo-run': 'fo-0', 'xcr:self': 'd-dead' }),
      disk('d-pending', ['ref-pending'], {}),
      disk('d-kept', [kept.ref], { 'xcr:fo-job': 'j', 'xcr:fo-run': 'fo-1', 'xcr:self': 'd-kept' }),
      disk('d-shared', ['ref-pending', 'ref-user'], {}),
      disk('clone-of-base', [], { 'xcr:fo-job': 'j', 'xcr:fo-pending': 'fb-0', 'xcr:self': 'base-disk' }),
      disk('base-disk', ['ref-base'], {
        'xcr:fo-job': 'j',
        'xcr:fo-pending': 'fb-0',
        'xcr:self': 'base-disk',
      }),
    ];
    const plan = planFailoverSweep({ jobId: 'j', liveRun: 'fo-9', keep: recordedRuns(vms, 'j'), vms, vdis });
    expect(plan.vms.map((v) => [v.uuid, v.running])).toEqual([
      ['dead-copy', true],
      ['pending', false],
    ]);
    expect(plan.vdis.map((v) => v.uuid)).toEqual(['d-dead', 'd-pending', 'clone-of-base']);
  });

  it('keeps a recorded copy’s reverse disks and reverse base of other runs', () => {
    const kept = copyVm(record({ reverseRun: 'fb-1', reverseBaseRun: 'fb-2' }));
    const snaps = [
      own('s1', 'reverse-snapshot', 'fb-2', { is_a_snapshot: true }),
      own('s0', 'reverse-snapshot', 'fb-0', { is_a_snapshot: true }),
    ];
    const vdis = [
      disk('r1', [], { 'xcr:fo-job': 'j', 'xcr:fo-run': 'fb-1', 'xcr:self': 'r1' }),
      disk('r0', [], { 'xcr:fo-job': 'j', 'xcr:fo-run': 'fb-0', 'xcr:self': 'r0' }),
    ];
    const vms = [kept, ...snaps];
    const plan = planFailoverSweep({ jobId: 'j', keep: recordedRuns(vms, 'j'), vms, vdis });
    expect(plan.vms.map((v) => v.uuid)).toEqual(['s0']);
    expect(plan.vdis.map((v) => v.uuid)).toEqual(['r0']);
  });

  it('keeps a recorded copy’s CBT baseline; a crashed failover’s baseline goes, tagged or still under its pending name', () => {
    const kept = copyVm(record({ cbtBaseline: 'b1' }));
    const snap = { is_a_snapshot: true };
    const vms = [
      kept,
      own('b1', 'cbt-baseline', 'fo-1', snap),
      own('b0', 'cbt-baseline', 'fo-0', snap),
      vm({ uuid: 'b-pending', name_label: '[xcr-failover:j:fo-0] pending copy', ...snap }),
    ];
    const baseDisk = (uuid: string, vmUuid: string, run: string) =>
      disk(uuid, [`ref-${vmUuid}`], {
        'xcr:fo-job': 'j',
        'xcr:fo-role': 'cbt-baseline-disk',
        'xcr:fo-run': run,
        'xcr:self': uuid,
      });
    const vdis = [
      baseDisk('bd1', 'b1', 'fo-1'),
      baseDisk('bd0', 'b0', 'fo-0'),
      disk('bdp', ['ref-b-pending'], {}),
    ];
    const plan = planFailoverSweep({ jobId: 'j', keep: recordedRuns(vms, 'j'), vms, vdis });
    expect(plan.vms.map((v) => [v.uuid, v.running])).toEqual([
      ['b0', false],
      ['b-pending', false],
    ]);
    expect(plan.vdis.map((v) => v.uuid)).toEqual(['bd0', 'bdp']);
  });
});

describe('newVmNotice (the original VM gone, the failback made a new one)', () => {
  it('a job by tag protects the new VM by its tag; a job by uuid says exactly what to change', () => {
    expect(newVmNotice({ id: 'j', vms: { tag: 'prod' } }, 'old', 'new')).toMatch(
      /VM old is gone .* made VM new .* carries the job's tag "prod", so job j protects it/,
    );
    expect(newVmNotice({ id: 'j', vms: { uuids: ['old', 'x'] } }, 'old', 'new')).toMatch(
      /in the config's job "j", change vms.uuids entry "old" to "new"/,
    );
  });
});
