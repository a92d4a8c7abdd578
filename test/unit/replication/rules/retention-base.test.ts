import { describe, expect, it } from 'vitest';
import { selectBase } from '../../../../functions/replication/rules/base.js';
import { disksToDestroyWith } from '../../../../functions/replication/rules/disks.js';
import { ownershipOf } from '../../../../functions/replication/rules/ownership.js';
import { planRetention } from '../../../../functions/replication/rules/retention.js';

const JOB = 'web';

function point(
  uuid: string,
  time: string,
  o: { job?: string; vm?: string; self?: string | null; status?: string; snapshot?: boolean } = {},
) {
  return {
    ref: `ref-${uuid}`,
    uuid,
    is_a_snapshot: o.snapshot ?? false,
    other_config: {
      'xcr:job': o.job ?? JOB,
      'xcr:vm': o.vm ?? 'vm1',
      'xcr:role': 'recovery-point',
      'xcr:status': o.status ?? 'complete',
      'xcr:time': time,
      ...(o.self === null ? {} : { 'xcr:self': o.self ?? uuid }),
    },
  };
}

const t = (h: number) => `2026-12-01T${String(h).padStart(2, '0')}:00:00.000Z`;
const kept = (r: { keep: { uuid: string }[] }) => r.keep.map((p) => p.uuid);
const deleted = (r: { delete: { uuid: string }[] }) => r.delete.map((p) => p.uuid);

describe('planRetention', () => {
  it('keeps the n newest whatever order XAPI lists them in (XO deleted the newest instead)', () => {
    const r = planRetention(
      [point('b', t(2)), point('d', t(4)), point('a', t(1)), point('c', t(3))],
      2,
      JOB,
      'vm1',
    );
    expect(kept(r)).toEqual(['d', 'c']);
    expect(deleted(r)).toEqual(['b', 'a']);
  });

  it('never deletes the newest, even with a retention below one', () => {
    expect(kept(planRetention([point('a', t(1)), point('b', t(2))], 0, JOB, 'vm1'))).toEqual(['b']);
  });

  it('a user’s clone neither takes a place nor is deleted', () => {
    const clone = { ...point('a', t(5)), uuid: 'clone', ref: 'ref-clone' };
    const r = planRetention([point('a', t(1)), point('b', t(2)), clone], 1, JOB, 'vm1');
    expect(kept(r)).toEqual(['b']);
    expect(deleted(r)).toEqual(['a']);
  });

  it('other jobs, other VMs, snapshots of points and unfinished points are not counted', () => {
    const r = planRetention(
      [
        point('mine', t(1)),
        point('theirs', t(2), { job: 'db' }),
        point('other-vm', t(3), { vm: 'vm2' }),
        point('snap', t(4), { snapshot: true }),
        point('pending', t(5), { status: 'pending' }),
      ],
      1,
      JOB,
      'vm1',
    );
    expect(kept(r)).toEqual(['mine']);
    expect(deleted(r)).toEqual([]);
  });

  it('a point without xcr:self is not a recovery point (complete points always carried it)', () => {
    expect(kept(planRetention([point('a', t(1), { self: null })], 1, JOB, 'vm1'))).toEqual([]);
  });

  it('equal times are ordered by uuid, so repeated plans agree', () => {
    const r = planRetention([point('b', t(1)), point('a', t(1))], 1, JOB, 'vm1');
    expect(kept(r)).toEqual(['a']);
  });
});

function snap(
  uuid: string,
  time: string,
  o: { job?: string; status?: string; of?: string; self?: string; vm?: string } = {},
) {
  return {
    ref: `ref-${uuid}`,
    uuid,
    is_a_snapshot: true,
    snapshotOf: o.of ?? 'vm1',
    other_config: {
      'xcr:job': o.job ?? JOB,
      'xcr:vm': o.vm ?? 'vm1',
      'xcr:role': 'source-snapshot',
      'xcr:status': o.status ?? 'exported',
      'xcr:time': time,
      'xcr:self': o.self ?? uuid,
    },
  };
}

describe('selectBase', () => {
  it('the newest exported snapshot of this job is the base; older exported ones are superseded', () => {
    const r = selectBase([snap('s1', t(1)), snap('s3', t(3)), snap('s2', t(2))], JOB, 'vm1');
    expect(r.base?.uuid).toBe('s3');
    expect(r.superseded.map((s) => s.uuid)).toEqual(['s2', 's1']);
  });

  it('pending snapshots (a live run of this or another job) are neither base nor superseded', () => {
    const r = selectBase([snap('s1', t(1)), snap('p', t(2), { status: 'pending' })], JOB, 'vm1');
    expect(r.base?.uuid).toBe('s1');
    expect(r.superseded).toEqual([]);
  });

  it('another job’s exported snapshot of the same VM is not ours to use or prune', () => {
    const r = selectBase([snap('s1', t(1)), snap('db', t(2), { job: 'db' })], JOB, 'vm1');
    expect(r.base?.uuid).toBe('s1');
    expect(r.superseded).toEqual([]);
  });

  it('a user’s snapshot, a copy, or a snapshot of another VM is never the base', () => {
    const user = { ...snap('u', t(5)), other_config: {} as Record<string, string> };
    const copy = snap('c', t(6), { self: 'someone-else' });
    const elsewhere = snap('e', t(7), { of: 'clone-vm' });
    const r = selectBase([snap('s1', t(1)), user, copy, elsewhere], JOB, 'vm1');
    expect(r.base?.uuid).toBe('s1');
    expect(r.superseded).toEqual([]);
  });

  it('no exported snapshot: no base (the run goes full)', () => {
    expect(selectBase([snap('p', t(1), { status: 'pending' })], JOB, 'vm1').base).toBeUndefined();
  });
});

describe('disksToDestroyWith', () => {
  const disk = (
    uuid: string,
    vms: string[],
    oc: Record<string, string> = { 'xcr:job': JOB, 'xcr:self': uuid },
  ) => ({
    ref: `ref-${uuid}`,
    uuid,
    other_config: oc,
    vms,
  });

  it('takes the job’s own disks used by that VM only', () => {
    const out = disksToDestroyWith(
      'rp',
      [
        disk('own', ['rp']),
        disk('shared', ['rp', 'users-vm']),
        disk('swapped-in', ['rp'], {}),
        disk('copy', ['rp'], { 'xcr:job': JOB, 'xcr:self': 'original' }),
        disk('theirs', ['rp'], { 'xcr:job': 'db', 'xcr:self': 'theirs' }),
        disk('legacy', ['rp'], { 'xcr:job': JOB }),
      ],
      JOB,
    );
    expect(out.map((d) => d.uuid)).toEqual(['own', 'legacy']);
  });
});

describe('ownershipOf', () => {
  it.each([
    [
      { 'xcr:job': JOB, 'xcr:run': 'r1', 'xcr:self': 'x' },
      { kind: 'ours', verified: true, run: 'r1' },
    ],
    [
      { 'xcr:job': JOB, 'xcr:run': 'r1' },
      { kind: 'ours', verified: false, run: 'r1' },
    ],
    [
      { 'xcr:job': JOB, 'xcr:run': 'r1', 'xcr:self': 'y' },
      { kind: 'copy', of: 'y' },
    ],
    [
      { 'xcr:job': 'db', 'xcr:run': 'r1', 'xcr:self': 'x' },
      { kind: 'other-job', job: 'db' },
    ],
    [{}, { kind: 'none' }],
  ])('%o → %o', (other_config, expected) => {
    expect(ownershipOf({ uuid: 'x', other_config }, JOB)).toEqual(expected);
  });

  it('a run id in another job’s pending-snapshot name never counts as ours', () => {
    expect(
      ownershipOf({ uuid: 'x', other_config: {}, name_label: '[xcr:db:r1] pending snapshot' }, JOB),
    ).toEqual({
      kind: 'other-job',
      job: 'db',
    });
    expect(
      ownershipOf({ uuid: 'x', other_config: {}, name_label: '[xcr:web:r1] pending snapshot' }, JOB),
    ).toEqual({
      kind: 'ours',
      verified: false,
      run: 'r1',
    });
  });
});
