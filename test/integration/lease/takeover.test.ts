/** A local lease left by a process that died is taken over at once; a live holder's is not. */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FileLeaseStore, LeaseHeldError } from '../../../functions/lease/index.js';
import { leaseKey } from '../../../functions/replication/context.js';
import { MiB, type Sites, startSites } from '../../support/sites.js';
import { crash, holdLeaseInChild } from './holder.js';

const dir = await mkdtemp(join(tmpdir(), 'xcr-takeover-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
const HOUR = 3_600_000;

/** Rewrites the holder recorded in a lease's current generation file. */
async function editHolder(key: string, edit: (holder: Record<string, unknown>) => void): Promise<void> {
  const keyDir = join(dir, `${key}.lease`);
  const [file] = await readdir(keyDir);
  const rec = JSON.parse(await readFile(join(keyDir, file!), 'utf8'));
  edit(rec.holder);
  await writeFile(join(keyDir, file!), JSON.stringify(rec));
}

it('a live holder keeps the lease and is named (host, pid, since); unlock refuses', async () => {
  const child = await holdLeaseInChild(dir, 'live', 'run-live');
  try {
    const store = new FileLeaseStore(dir);
    const r = await store.acquire('live', 'run-next', HOUR);
    expect(r).toMatchObject({
      acquired: false,
      holder: 'run-live',
      holderInfo: { host: hostname(), pid: child.pid },
    });
    expect(r.acquired === false && Date.parse(r.holderInfo!.since)).toBeGreaterThan(Date.now() - 60_000);
    await expect(store.unlock('live')).rejects.toBeInstanceOf(LeaseHeldError);
    await expect(store.unlock('live', { force: true })).rejects.toThrow(
      /still running \(pid \d+ on this host/,
    );
  } finally {
    await crash(child);
  }
});

it('a killed holder’s lease is taken over by the next acquire, which says from whom', async () => {
  const child = await holdLeaseInChild(dir, 'killed', 'run-killed');
  await crash(child);
  const r = await new FileLeaseStore(dir).acquire('killed', 'run-next', HOUR);
  expect(r).toMatchObject({
    acquired: true,
    tookOverFrom: { owner: 'run-killed', holder: { pid: child.pid } },
  });
});

it('unlock clears a dead holder’s lease', async () => {
  const child = await holdLeaseInChild(dir, 'dead', 'run-dead');
  await crash(child);
  const store = new FileLeaseStore(dir);
  expect(await store.unlock('dead')).toBe('run-dead');
  expect(await store.unlock('dead')).toBeUndefined();
  expect((await store.acquire('dead', 'run-new', HOUR)).acquired).toBe(true);
});

it('a pid reused by another process (other start time) counts as dead', async () => {
  const store = new FileLeaseStore(dir);
  await store.acquire('reused', 'run-old', HOUR);
  // This very pid, but with a start time it never had.
  await editHolder('reused', (h) => {
    h.pidStart = '1';
  });
  expect(await store.acquire('reused', 'run-new', HOUR)).toMatchObject({
    acquired: true,
    tookOverFrom: { owner: 'run-old' },
  });
});

describe('a local run', () => {
  let sites: Sites | undefined;
  afterEach(async () => {
    await sites?.close();
    sites = undefined;
  });

  it('takes over the lease of a killed run at once, with a warning; a live one makes it skip, naming it and `xcr unlock`', async () => {
    sites = await startSites({ vms: [{ name_label: 'web', disks: [{ sizeBytes: 4 * MiB }] }] });
    const live = await holdLeaseInChild(sites.stateDir, leaseKey('job1'), 'run-alive');
    try {
      const skipped = await sites.run();
      expect(skipped.status).toBe('skipped');
      expect(skipped.reason).toContain(
        `run run-alive of job job1 is still running on host ${hostname()}, pid ${live.pid}, since `,
      );
      expect(skipped.reason).toContain('`xcr unlock job1`');
    } finally {
      await crash(live);
    }
    const killed = await holdLeaseInChild(sites.stateDir, leaseKey('job1'), 'run-killed');
    await crash(killed);
    const run = await sites.run();
    expect(run.status).toBe('succeeded');
    const warning = sites.logs.find((l) => l.message === 'took over the lease of a run that died');
    expect(warning).toMatchObject({
      level: 'WARN',
      deadRun: 'run-killed',
      pid: killed.pid,
      host: hostname(),
    });
  });
});

it('a holder on another host is never taken over; unlock needs --force for it', async () => {
  const store = new FileLeaseStore(dir);
  await store.acquire('remote', 'run-remote', HOUR);
  await editHolder('remote', (h) => {
    h.host = 'another-machine';
  });
  expect(await store.acquire('remote', 'run-new', HOUR)).toMatchObject({
    acquired: false,
    holder: 'run-remote',
  });
  await expect(store.unlock('remote')).rejects.toThrow(/host another-machine.*--force/);
  expect(await store.unlock('remote', { force: true })).toBe('run-remote');
});
