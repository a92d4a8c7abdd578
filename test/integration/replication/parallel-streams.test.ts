import { afterEach, describe, expect, it } from 'vitest';
import { MiB, type Sites, type StepWrapper, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const DISK = 8 * MiB;
const twoDisks = (name: string) => ({
  name_label: name,
  disks: [
    { sizeBytes: DISK, data: [{ offset: 0, length: DISK, seed: 1 }] },
    { sizeBytes: DISK, data: [{ offset: 0, length: DISK, seed: 2 }] },
  ],
});

/** Runs the job once, sampling how many exports the source serves at once; counts stream-delta calls. */
async function observedRun(s: Sites): Promise<{ maxExports: number; streamCalls: number; ms: number }> {
  let maxExports = 0;
  const sample = setInterval(() => {
    const open = s.source.test
      .objects('task')
      .filter(([, t]) => String(t.name_label).startsWith('xcr export') && t.status === 'pending').length;
    maxExports = Math.max(maxExports, open);
  }, 10);
  let streamCalls = 0;
  const count: StepWrapper = (step, handler) => async (input) => {
    if (step === 'stream-delta') streamCalls++;
    return handler(input);
  };
  const started = Date.now();
  try {
    const run = await s.run(undefined, count);
    expect(run.status).toBe('succeeded');
  } finally {
    clearInterval(sample);
  }
  return { maxExports, streamCalls, ms: Date.now() - started };
}

describe('parallel disk streams under per-stream and per-host caps', () => {
  it('streams a VM’s disks side by side in one stream-delta, each stream at its cap', async () => {
    sites = await startSites({ vms: [twoDisks('vm')], job: { diskStreams: 2 } });
    sites.source.test.throttle(4e6); // 4 MB/s per connection: each disk takes about 2 s
    const r = await observedRun(sites);
    expect(r.maxExports).toBe(2);
    expect(r.streamCalls).toBe(1);
    // two disks of 8 MiB at 4 MB/s each, side by side: at least one disk's time, well below two
    expect(r.ms).toBeGreaterThanOrEqual((DISK / 4e6) * 1000);
    sites.assertReplicasMatchSource('vm');
    sites.assertNoLeaks();
  });

  it('one stream at a time with diskStreams 1, or when sourceStreamLimit holds one slot', async () => {
    for (const job of [{ diskStreams: 1 }, { diskStreams: 2, sourceStreamLimit: 1 }]) {
      sites = await startSites({ vms: [twoDisks('vm')], job });
      sites.source.test.throttle(16e6);
      const r = await observedRun(sites);
      expect(r.maxExports, JSON.stringify(job)).toBe(1);
      expect(r.streamCalls).toBe(job.diskStreams === 1 ? 2 : 1);
      sites.assertReplicasMatchSource('vm');
      sites.assertNoLeaks();
      await sites.close();
      sites = undefined;
    }
  });

  it('a host cap binds all the host’s streams together', async () => {
    sites = await startSites({ vms: [twoDisks('vm')], job: { diskStreams: 2 } });
    sites.source.test.hostThrottle(4e6); // both streams share 4 MB/s
    const r = await observedRun(sites);
    expect(r.maxExports).toBe(2);
    expect(r.ms).toBeGreaterThanOrEqual(((2 * DISK) / 4e6) * 1000);
    sites.assertReplicasMatchSource('vm');
  });
});
