import { unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../../../functions/lease/file.js';
import { leaseDirName } from '../../../functions/lease/key.js';
import { leaseContract, ManualClock } from '../../support/lease-contract.js';

const root = await mkdtemp(join(tmpdir(), 'xcr-lease-'));
afterAll(() => rm(root, { recursive: true, force: true }));

let n = 0;
async function freshDir(): Promise<string> {
  return mkdtemp(join(root, `s${n++}-`));
}

describe('FileLeaseStore', () => {
  leaseContract(async (now) => new FileLeaseStore(await freshDir(), { now }), { propertyRuns: 60 });

  it('keeps only the newest generation files after many renewals', async () => {
    const dir = await freshDir();
    const store = new FileLeaseStore(dir);
    for (let i = 0; i < 20; i++) await store.acquire('job', 'run-a', 60_000);
    const files = await readdir(join(dir, leaseDirName('job')));
    expect(files).toEqual(['000000000020.json']);
  });

  it('shares one lease between store instances on the same directory', async () => {
    const dir = await freshDir();
    const clock = new ManualClock();
    const one = new FileLeaseStore(dir, { now: clock.now });
    const two = new FileLeaseStore(dir, { now: clock.now });
    expect(await one.acquire('job', 'run-a', 1000)).toEqual({ acquired: true });
    expect(await two.acquire('job', 'run-b', 1000)).toMatchObject({ acquired: false, holder: 'run-a' });
  });

  it('reads the highest generation and treats an unreadable one as free', async () => {
    const dir = await freshDir();
    const keyDir = join(dir, leaseDirName('job'));
    const clock = new ManualClock();
    const store = new FileLeaseStore(dir, { now: clock.now });
    await store.acquire('job', 'run-a', 60_000);
    const future = clock.ms + 3_600_000;
    await writeFile(
      join(keyDir, '000000000007.json'),
      JSON.stringify({ owner: 'run-z', expiresAtMs: future }),
    );
    expect(await store.acquire('job', 'run-b', 1000)).toEqual({
      acquired: false,
      holder: 'run-z',
      expiresAt: new Date(future),
    });
    await writeFile(join(keyDir, '000000000009.json'), '{"owner":');
    expect(await store.acquire('job', 'run-b', 1000)).toEqual({ acquired: true });
    expect(await readdir(keyDir)).toEqual(['000000000010.json']);
  });

  it('does not win by reusing a generation number that another process pruned meanwhile', async () => {
    const dir = await freshDir();
    const keyDir = join(dir, leaseDirName('job'));
    const clock = new ManualClock();
    await new FileLeaseStore(dir, { now: clock.now }).acquire('job', 'run-a', 1000);
    clock.advance(5000);
    const far = clock.ms + 3_600_000;
    let interleave = true;
    // now() runs between the slow store's read of generation 1 and its write of generation 2: in that
    // gap another process takes the expired lease (2), renews it (3) and prunes 1 and 2.
    const slow = new FileLeaseStore(dir, {
      now: () => {
        if (interleave) {
          interleave = false;
          const lease = JSON.stringify({ owner: 'run-c', expiresAtMs: far });
          writeFileSync(join(keyDir, '000000000002.json'), lease);
          writeFileSync(join(keyDir, '000000000003.json'), lease);
          unlinkSync(join(keyDir, '000000000001.json'));
          unlinkSync(join(keyDir, '000000000002.json'));
        }
        return clock.now();
      },
    });
    expect(await slow.acquire('job', 'run-b', 1000)).toEqual({
      acquired: false,
      holder: 'run-c',
      expiresAt: new Date(far),
    });
  });

  it('cleans temporary files a dead process left, once they are old', async () => {
    const dir = await freshDir();
    const store = new FileLeaseStore(dir);
    await store.acquire('job', 'run-a', 60_000);
    const keyDir = join(dir, leaseDirName('job'));
    const old = join(keyDir, '.tmp-1-old');
    const young = join(keyDir, '.tmp-1-young');
    await writeFile(old, '{}');
    await writeFile(young, '{}');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(old, hourAgo, hourAgo);
    await store.acquire('job', 'run-a', 60_000);
    expect((await readdir(keyDir)).sort()).toEqual(['.tmp-1-young', '000000000002.json']);
  });
});

describe('leaseDirName', () => {
  it('keeps safe characters and escapes everything else, upper case included', () => {
    expect(leaseDirName('nightly-db_1')).toBe('nightly-db_1.lease');
    expect(leaseDirName('job:Nightly/../x')).toBe('job%3A%4Eightly%2F%2E%2E%2Fx.lease');
    expect(leaseDirName('é')).toBe('%C3%A9.lease');
  });

  it('never maps two keys to names equal ignoring case, and bounds long names', () => {
    const keys = [
      'a',
      'A',
      '%41',
      'job',
      'JOB',
      'Job',
      'x'.repeat(500),
      `${'x'.repeat(499)}y`,
      'a.b',
      'a%2Eb',
    ];
    const names = keys.map((k) => leaseDirName(k).toLowerCase());
    expect(new Set(names).size).toBe(keys.length);
    for (const name of names) expect(name.length).toBeLessThan(200);
  });
});
