import { describe, expect, it } from 'vitest';
import { pendingSnapshotName } from '../../../../functions/replication/metadata.js';
import {
  planSweep,
  type SweepInput,
  type SweepVdi,
  type SweepVm,
} from '../../../../functions/replication/rules/sweep.js';

const JOB = 'web';
const SRC_VM = 'src-vm';

/** Keys as a run of `job` writes them; `self` = the uuid the object was created with. */
function keys(
  role: string,
  status: string | undefined,
  o: { job?: string; run?: string; self?: string | null; vm?: string } = {},
) {
  return {
    'xcr:job': o.job ?? JOB,
    'xcr:vm': o.vm ?? SRC_VM,
    'xcr:run': o.run ?? 'r1',
    'xcr:role': role,
    ...(status ? { 'xcr:status': status } : {}),
    'xcr:time': '2026-12-01T10:00:00.000Z',
    ...(o.self === null ? {} : { 'xcr:self': o.self ?? '' }),
  };
}

function vm(uuid: string, oc: Record<string, string>, o: Partial<SweepVm> = {}): SweepVm {
  const other_config = { ...oc };
  if (other_config['xcr:self'] === '') other_config['xcr:self'] = uuid;
  return {
    ref: `ref-${uuid}`,
    uuid,
    other_config,
    is_a_snapshot: false,
    power_state: 'Halted',
    snapshotOf: '',
    name_label: uuid,
    ...o,
  };
}

function vdi(uuid: string, oc: Record<string, string>, o: Partial<SweepVdi> = {}): SweepVdi {
  const other_config = { ...oc };
  if (other_config['xcr:self'] === '') other_config['xcr:self'] = uuid;
  return { ref: `ref-${uuid}`, uuid, other_config, is_a_snapshot: false, vms: [], ...o };
}

/** A copy made by VM.clone/VDI.copy/VM.snapshot: same keys, new uuid. */
function copyOf<T extends SweepVm | SweepVdi>(orig: T, uuid: string, o: Partial<T> = {}): T {
  return { ...orig, ref: `ref-${uuid}`, uuid, other_config: { ...orig.other_config }, ...o };
}

const completeRp = vm('rp1', keys('recovery-point', 'complete'));
const completeRpDisk = vdi('rp1-d0', keys('replica-disk', 'complete'), { vms: ['ref-rp1'] });
const pendingRp = vm('rp2', keys('recovery-point', 'pending', { run: 'r2' }));
const pendingRpDisk = vdi('rp2-d0', keys('replica-disk', 'pending', { run: 'r2' }), { vms: ['ref-rp2'] });
const pendingTarget = vdi('t2', keys('replica-disk', 'pending', { run: 'r2' }));
const exportedSnap = vm('s1', keys('source-snapshot', 'exported'), {
  is_a_snapshot: true,
  snapshotOf: SRC_VM,
});
const exportedSnapDisk = vdi('s1-d0', keys('source-snapshot', undefined), {
  is_a_snapshot: true,
  vms: ['ref-s1'],
});
const pendingSnap = vm('s2', keys('source-snapshot', 'pending', { run: 'r2' }), {
  is_a_snapshot: true,
  snapshotOf: SRC_VM,
});
const pendingSnapDisk = vdi('s2-d0', keys('source-snapshot', undefined, { run: 'r2' }), {
  is_a_snapshot: true,
  vms: ['ref-s2'],
});

const destroyed = (input: Partial<SweepInput>) =>
  planSweep({ jobId: JOB, scope: { except: 'r9' }, vms: [], vdis: [], ...input })
    .destroy.map((d) => d.uuid)
    .sort();

interface Case {
  name: string;
  input: Partial<SweepInput>;
  destroy: string[];
  report?: string[];
  promote?: string[];
}

const cases: Case[] = [
  // What the sweep exists for (XO's "dead cleanup": interrupted transfers must really be removed).
  {
    name: 'an interrupted run: pending recovery point, its disk and a stray target',
    input: { vms: [completeRp, pendingRp], vdis: [completeRpDisk, pendingRpDisk, pendingTarget] },
    destroy: ['rp2', 'rp2-d0', 't2'],
  },
  {
    name: 'an interrupted run on the source: pending snapshot and its disks',
    input: { vms: [exportedSnap, pendingSnap], vdis: [exportedSnapDisk, pendingSnapDisk] },
    destroy: ['s2', 's2-d0'],
  },
  {
    name: 'a snapshot left untagged by a crash after VM.snapshot (found by its pending name)',
    input: {
      vms: [
        vm('s3', {}, { is_a_snapshot: true, snapshotOf: SRC_VM, name_label: pendingSnapshotName(JOB, 'r3') }),
      ],
      vdis: [vdi('s3-d0', {}, { is_a_snapshot: true, vms: ['ref-s3'] })],
    },
    destroy: ['s3', 's3-d0'],
  },
  {
    name: 'an orphan snapshot disk of an interrupted run',
    input: {
      vdis: [vdi('s4-d0', keys('source-snapshot', undefined, { run: 'r4' }), { is_a_snapshot: true })],
    },
    destroy: ['s4-d0'],
  },
  {
    name: 'a complete recovery point and an exported base are kept',
    input: { vms: [completeRp, exportedSnap], vdis: [completeRpDisk, exportedSnapDisk] },
    destroy: [],
  },
  // A pending point of the live run.
  {
    name: 'the current run’s pending objects are not touched by its own lock-check',
    input: {
      scope: { except: 'r2' },
      vms: [pendingRp, pendingSnap],
      vdis: [pendingRpDisk, pendingTarget, pendingSnapDisk],
    },
    destroy: [],
  },
  // User copies (issue: the clone destroyed with its disks; the running clone failing every run).
  {
    name: 'a user’s halted VM.clone of a recovery point, with its cloned disks',
    input: {
      vms: [completeRp, copyOf(completeRp, 'c1')],
      vdis: [completeRpDisk, copyOf(completeRpDisk, 'c1-d0', { vms: ['ref-c1'] })],
    },
    destroy: [],
    report: ['c1', 'c1-d0'],
  },
  {
    name: 'a user’s running clone of a recovery point',
    input: {
      vms: [copyOf(completeRp, 'c2', { power_state: 'Running' })],
      vdis: [copyOf(completeRpDisk, 'c2-d0', { vms: ['ref-c2'] })],
    },
    destroy: [],
    report: ['c2', 'c2-d0'],
  },
  {
    name: 'a clone of a pending point (of a live or dead run)',
    input: { vms: [copyOf(pendingRp, 'c3')], vdis: [copyOf(pendingRpDisk, 'c3-d0', { vms: ['ref-c3'] })] },
    destroy: [],
    report: ['c3', 'c3-d0'],
  },
  {
    name: 'VDI.clone of a recovery point’s single disk',
    input: { vms: [completeRp], vdis: [completeRpDisk, copyOf(completeRpDisk, 'c4', { vms: [] })] },
    destroy: [],
    report: ['c4'],
  },
  {
    name: 'VDI.copy of a recovery point disk attached to the user’s VM',
    input: {
      vms: [completeRp, vm('users', {})],
      vdis: [completeRpDisk, copyOf(completeRpDisk, 'c5', { vms: ['ref-users'] })],
    },
    destroy: [],
    report: ['c5'],
  },
  {
    name: 'VDI.copy of a pending target disk',
    input: { vdis: [pendingTarget, copyOf(pendingTarget, 'c6')] },
    destroy: ['t2'],
    report: ['c6'],
  },
  {
    name: 'a snapshot of a user’s clone of a recovery point',
    input: {
      vms: [copyOf(completeRp, 'c7'), copyOf(completeRp, 'c7s', { is_a_snapshot: true, snapshotOf: 'c7' })],
    },
    destroy: [],
    report: ['c7', 'c7s'],
  },
  {
    name: 'a snapshot of a user’s clone of a source snapshot (same pool): not a source snapshot',
    input: {
      vms: [
        copyOf(pendingSnap, 'c8', { is_a_snapshot: false, snapshotOf: '' }),
        {
          ...copyOf(pendingSnap, 'c8s', { snapshotOf: 'c8' }),
          other_config: { ...pendingSnap.other_config, 'xcr:self': 'c8s' },
        },
      ],
    },
    destroy: [],
    report: ['c8', 'c8s'],
  },
  {
    name: 'a user’s own snapshot of the source VM',
    input: {
      vms: [vm('u1', {}, { is_a_snapshot: true, snapshotOf: SRC_VM, name_label: 'before upgrade' })],
      vdis: [vdi('u1-d0', {}, { is_a_snapshot: true, vms: ['ref-u1'] })],
    },
    destroy: [],
  },
  // Two jobs on one VM; a run id reused across jobs.
  {
    name: 'another job’s pending snapshot and disks, in flight',
    input: {
      vms: [{ ...pendingSnap, other_config: { ...pendingSnap.other_config, 'xcr:job': 'db' } }],
      vdis: [{ ...pendingSnapDisk, other_config: { ...pendingSnapDisk.other_config, 'xcr:job': 'db' } }],
    },
    destroy: [],
  },
  {
    name: 'another job’s untagged pending snapshot (name carries job db)',
    input: {
      vms: [
        vm(
          'o1',
          {},
          { is_a_snapshot: true, snapshotOf: SRC_VM, name_label: pendingSnapshotName('db', 'r3') },
        ),
      ],
      vdis: [vdi('o1-d0', {}, { is_a_snapshot: true, vms: ['ref-o1'] })],
    },
    destroy: [],
  },
  {
    name: 'another job’s pending recovery point and target whose run id equals ours',
    input: {
      scope: { except: 'r2' },
      vms: [vm('o2', keys('recovery-point', 'pending', { job: 'db', run: 'r1' }))],
      vdis: [vdi('o2-d0', keys('replica-disk', 'pending', { job: 'db', run: 'r1' }))],
    },
    destroy: [],
  },
  {
    name: 'rollback of run r2 of VM src-vm does not touch run r2 of another job',
    input: {
      scope: { run: 'r2', vm: SRC_VM },
      vms: [pendingRp, vm('o3', keys('recovery-point', 'pending', { job: 'db', run: 'r2' }))],
      vdis: [
        pendingRpDisk,
        vdi('o3-d0', keys('replica-disk', 'pending', { job: 'db', run: 'r2' }), { vms: ['ref-o3'] }),
      ],
    },
    destroy: ['rp2', 'rp2-d0'],
  },
  {
    name: 'rollback of one VM leaves the same run’s objects of another VM',
    input: {
      scope: { run: 'r2', vm: 'other-vm' },
      vms: [pendingRp, pendingSnap],
      vdis: [pendingRpDisk, pendingSnapDisk],
    },
    destroy: [],
  },
  {
    name: 'rollback finds this run’s untagged snapshot by its name and snapshot_of',
    input: {
      scope: { run: 'r3', vm: SRC_VM },
      vms: [
        vm('s3', {}, { is_a_snapshot: true, snapshotOf: SRC_VM, name_label: pendingSnapshotName(JOB, 'r3') }),
      ],
      vdis: [vdi('s3-d0', {}, { is_a_snapshot: true, vms: ['ref-s3'] })],
    },
    destroy: ['s3', 's3-d0'],
  },
  // Interrupted commit: the recovery point completed, the snapshot was not marked yet.
  {
    name: 'an interrupted commit promotes the snapshot instead of destroying it',
    input: { vms: [pendingSnap], vdis: [pendingSnapDisk], completedSnapshots: new Map([['s2', 3]]) },
    destroy: [],
    promote: ['s2'],
  },
  // A running unfinished point is reported, never destroyed (VM.destroy would fail every run).
  {
    name: 'a pending recovery point someone started',
    input: { vms: [{ ...pendingRp, power_state: 'Running' }], vdis: [pendingRpDisk] },
    destroy: [],
    report: ['rp2'],
  },
  {
    name: 'a pending disk a user attached to their VM',
    input: { vms: [vm('users', {})], vdis: [{ ...pendingTarget, vms: ['ref-users'] }] },
    destroy: [],
    report: ['t2'],
  },
  // Objects from before self stamps (migration).
  {
    name: 'legacy: pending objects without xcr:self are swept',
    input: {
      vms: [vm('l1', keys('recovery-point', 'pending', { self: null }))],
      vdis: [vdi('l1-d0', keys('replica-disk', 'pending', { self: null }), { vms: ['ref-l1'] })],
    },
    destroy: ['l1', 'l1-d0'],
  },
  {
    name: 'legacy: a complete point with self on the VM only keeps its disks',
    input: {
      vms: [completeRp],
      vdis: [{ ...completeRpDisk, other_config: keys('replica-disk', 'complete', { self: null }) }],
    },
    destroy: [],
  },
  {
    name: 'legacy: a complete disk without self and no recovery point is reported, not destroyed',
    input: { vdis: [vdi('l2', keys('replica-disk', 'complete', { self: null }))] },
    destroy: [],
    report: ['l2'],
  },
  {
    name: 'a disk of a destroyed retention point left by a crash (complete, verified) is swept',
    input: { vdis: [vdi('x1', keys('replica-disk', 'complete'))] },
    destroy: ['x1'],
  },
];

describe('planSweep', () => {
  for (const c of cases) {
    it(c.name, () => {
      const plan = planSweep({ jobId: JOB, scope: { except: 'r9' }, vms: [], vdis: [], ...c.input });
      expect(plan.destroy.map((d) => d.uuid).sort()).toEqual([...c.destroy].sort());
      expect(plan.report.map((d) => d.uuid).sort()).toEqual([...(c.report ?? [])].sort());
      expect(plan.promote.map((d) => d.uuid)).toEqual(c.promote ?? []);
    });
  }

  it('lists VMs before VDIs, so a VM is gone before its disks are destroyed', () => {
    const plan = planSweep({ jobId: JOB, scope: { except: 'r9' }, vms: [pendingRp], vdis: [pendingRpDisk] });
    expect(plan.destroy.map((d) => d.cls)).toEqual(['VM', 'VDI']);
  });

  it('gives the promoted snapshot its recovery point’s chain', () => {
    const plan = planSweep({
      jobId: JOB,
      scope: { except: 'r9' },
      vms: [pendingSnap],
      vdis: [],
      completedSnapshots: new Map([['s2', 4]]),
    });
    expect(plan.promote[0]!.chain).toBe(4);
  });

  it('sweeping the other job sees the mirror image', () => {
    const theirs = { ...pendingSnap, other_config: { ...pendingSnap.other_config, 'xcr:job': 'db' } };
    expect(destroyed({ vms: [theirs] })).toEqual([]);
    expect(
      planSweep({ jobId: 'db', scope: { except: 'r9' }, vms: [theirs], vdis: [] }).destroy.map((d) => d.uuid),
    ).toEqual(['s2']);
  });
});
