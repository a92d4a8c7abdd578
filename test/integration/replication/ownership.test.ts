/**
 * Ownership end to end on two simulated pools: what a user makes from recovery points with an
 * independent XAPI client survives every later run and the points' retention, and two jobs
 * protecting the same VM never break each other, whichever step of one runs between the other's.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { MiB, type Sites, type StepWrapper, startSites } from '../../support/sites.js';

const here = dirname(fileURLToPath(import.meta.url));
let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

type Rec = Record<string, unknown> & { uuid: string };
const find = (s: Sites, cls: 'VM' | 'VDI', uuid: string) =>
  s.destination.test.objects(cls).find(([, r]) => r.uuid === uuid)?.[1] as Rec | undefined;

function vmHashes(s: Sites, uuid: string): string[] {
  const vm = find(s, 'VM', uuid)!;
  const vbds = new Map(s.destination.test.objects('VBD'));
  const vdis = new Map(s.destination.test.objects('VDI'));
  return (vm.VBDs as string[])
    .map((ref) => vbds.get(ref)!)
    .filter((vbd) => vbd.type === 'Disk')
    .map((vbd) => s.destination.test.hashVdi(vdis.get(vbd.VDI as string)!.uuid as string));
}

describe('a user’s copies of recovery points', () => {
  it('VM.clone (halted and running), a snapshot of a clone, VDI.copy and VDI.clone survive runs and retention', async () => {
    sites = await startSites({
      vms: [
        {
          name_label: 'web',
          disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: 2 * MiB, seed: 3 }] }],
        },
      ],
      job: { retention: 2 },
    });
    const live = sites.liveDisks('web')[0]!;
    expect((await sites.run()).status).toBe('succeeded');
    const rp = sites.recoveryPoints('web')[0]!;
    const { stdout } = await promisify(execFile)(
      '/usr/bin/python3',
      [
        join(here, 'user_copies.py'),
        sites.destination.url,
        sites.destination.username,
        sites.destination.password,
        rp.uuid,
      ],
      { timeout: 30_000 },
    );
    const made = JSON.parse(stdout) as {
      [k in 'halted' | 'running' | 'running_state' | 'snapshot_of_clone' | 'vdi_copy' | 'vdi_clone']: string;
    } & { copied_keys: string[] };
    expect(made.running_state).toBe('Running');
    // XAPI copies other_config: the copies carry the recovery point's keys, xcr:self included.
    expect(made.copied_keys).toEqual(expect.arrayContaining(['xcr:job', 'xcr:role', 'xcr:run', 'xcr:self']));
    const vms = [made.halted, made.running, made.snapshot_of_clone];
    const vdis = [made.vdi_copy, made.vdi_clone];
    const before = new Map(vms.map((u) => [u, vmHashes(sites!, u)]));
    const vdiBefore = new Map(vdis.map((u) => [u, sites!.destination.test.hashVdi(u)]));

    for (let i = 1; i <= 4; i++) {
      sites.source.test.writeVdi(live, i * MiB, Buffer.alloc(4096, i));
      const run = await sites.run();
      expect(run.status, JSON.stringify(run.vms)).toBe('succeeded');
    }
    // The original recovery point has expired; everything the user made is still there, unchanged.
    expect(sites.recoveryPoints('web').map((r) => r.uuid)).not.toContain(rp.uuid);
    expect(sites.recoveryPoints('web')).toHaveLength(2);
    for (const u of vms) expect(vmHashes(sites, u), u).toEqual(before.get(u));
    for (const u of vdis) expect(sites.destination.test.hashVdi(u), u).toBe(vdiBefore.get(u));
    expect(find(sites, 'VM', made.running)!.power_state).toBe('Running');
    sites.assertReplicasMatchSource('web');
    sites.assertNoLeaks();
    // The runs said what they left alone.
    const leftAlone = sites.logs.filter((l) => l.message === 'left alone: not provably this job’s');
    expect(JSON.stringify(leftAlone)).toContain(made.running);
  });
});

describe('two jobs protecting one VM', () => {
  const steps = ['lock-check', 'snapshot-previous', 'stream-delta', 'commit-or-rollback', 'finish-run'];

  /** Runs `inner` completely just before the `at`-th step invocation of the outer run. */
  const between = (at: number, inner: () => Promise<unknown>): StepWrapper => {
    let n = 0;
    return (_step, handler) => async (input) => {
      if (n++ === at) await inner();
      return handler(input);
    };
  };

  it('both succeed and neither loses a snapshot, with each run interleaved at every step boundary of the other', async () => {
    sites = await startSites({
      vms: [
        { name_label: 'app', disks: [{ sizeBytes: 8 * MiB, data: [{ offset: 0, length: MiB, seed: 5 }] }] },
      ],
      extraJobs: [{ id: 'job2', retention: 2 }],
      job: { retention: 2 },
    });
    const s = sites;
    const live = s.liveDisks('app')[0]!;
    const outcomes: string[] = [];
    const record = (label: string, r: { status: string; vms: { status: string; errorCode?: string }[] }) =>
      outcomes.push(`${label}:${r.status}${r.vms.map((v) => v.errorCode ?? '').join('')}`) &&
      process.env.XCR_DEBUG &&
      console.log(outcomes.at(-1));
    for (const [outer, inner] of [
      ['job1', 'job2'],
      ['job2', 'job1'],
    ] as const) {
      for (let at = 0; at < steps.length; at++) {
        s.source.test.writeVdi(live, at * 4096, Buffer.alloc(4096, at + 1));
        const runInner = async () => record(`${inner}@${at}`, await s.runJob(inner));
        const wrap = between(at, runInner);
        const result =
          outer === 'job1' ? await s.run(undefined, wrap) : await s.runJob(outer, undefined, wrap);
        record(`${outer}(outer ${at})`, result);
        expect(s.leaks('job1'), `job1 after ${outer}@${at}`).toEqual([]);
        expect(s.leaks('job2'), `job2 after ${outer}@${at}`).toEqual([]);
      }
    }
    expect(outcomes.filter((o) => !o.endsWith(':succeeded'))).toEqual([]);
    expect(outcomes).toHaveLength(4 * steps.length);
    // Each job kept its own exported base and its own verified recovery points.
    for (const job of ['job1', 'job2']) {
      const snaps = s.source.test
        .objects('VM')
        .filter(([, r]) => (r.other_config as Record<string, string>)['xcr:job'] === job);
      expect(snaps, job).toHaveLength(1);
      expect((snaps[0]![1].other_config as Record<string, string>)['xcr:status']).toBe('exported');
    }
  }, 300_000);
});
