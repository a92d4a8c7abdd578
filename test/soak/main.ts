/**
 * `npm run soak -- --cycles N [--seed S] [--chains]`: N scheduled cycles of a job with a guest writing
 * random data and a random fault injected into about a third of them. After every successful cycle the
 * newest recovery point must equal the source snapshot it came from; at the end, after one clean
 * cycle, nothing may be left over on either pool. Bounded: small disks, at most N + 1 runs.
 *
 * Both pools run SM's garbage collector with timings as compressed as the schedule. `--chains` (what
 * `npm run soak` does, 500 cycles) also stalls the destination's GC now and then (a quiet period
 * longer than many cycles), so chains grow until the job's maxChainDepth and are then copied flat. After every cycle every VHD
 * chain on the destination must be at most maxChainDepth deep (the documented bound).
 */
import { Command } from 'commander';
import { discoverCalls } from '../faults/scenarios.js';
import { report } from '../support/figure.js';
import { MiB, type Sites, type StepWrapper, startSites } from '../support/sites.js';

const opts = new Command('soak')
  .option('--cycles <n>', 'scheduled cycles', '30')
  .option('--seed <n>', 'random seed', '1')
  .option('--chains', 'model VHD chains and GC stalls; check the chain depth bound every cycle')
  .parse(process.argv)
  .opts<{ cycles: string; seed: string; chains?: boolean }>();
const cycles = Number(opts.cycles);
let seed = Number(opts.seed) >>> 0 || 1;
/** A small deterministic generator, so a failing soak can be replayed with its seed. */
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const calls = await discoverCalls();
const faults: { name: string; apply(sites: Sites): StepWrapper | undefined; abandon?: boolean }[] = [
  ...(['source', 'destination'] as const).flatMap((side) =>
    calls[side]
      .filter((m) => !/^(session\.|task\.destroy|event\.from)/.test(m))
      .map((method) => ({
        name: `${side} ${method}`,
        apply: (sites: Sites) => {
          sites[side].test.injectFault({
            method,
            nth: 1 + Math.floor(random() * 3),
            count: 1000,
            error: ['SR_BACKEND_FAILURE_47', '', 'The SR is not available', ''],
          });
          return undefined;
        },
      })),
  ),
  {
    name: 'export cut',
    apply: (sites) => {
      for (let nth = 1; nth <= 12; nth++)
        sites.source.test.cutStream({
          path: 'export_raw_vdi',
          afterBytes: Math.floor(random() * 4 * MiB),
          nth,
        });
      return undefined;
    },
  },
  {
    name: 'sessions expire',
    apply: (sites) => {
      sites.source.test.expireSessions();
      return undefined;
    },
  },
  {
    name: 'crash after stream-delta',
    abandon: true,
    apply: () => (step, handler) => async (input) => {
      const out = await handler(input);
      if (step === 'stream-delta') throw new Error('process died');
      return out;
    },
  },
];

const sites = await startSites({
  vms: [
    {
      name_label: 'web',
      disks: [
        { sizeBytes: 64 * MiB, data: [{ offset: 0, length: 8 * MiB, seed: 1 }] },
        { sizeBytes: 32 * MiB },
      ],
    },
    {
      name_label: 'db',
      disks: [{ sizeBytes: 48 * MiB, data: [{ offset: 4 * MiB, length: 4 * MiB, seed: 2 }] }],
    },
  ],
  job: { retention: 3, fullInterval: opts.chains ? 0 : 7, concurrency: 2, chainWaitSec: 1 },
  // the schedule is compressed, so is the GC: with SM's 5-minute quiet period a source chain would
  // reach SM's limit of 30 after 30 quick cycles, as snapshots faster than coalescing do on a real SR
  sourceStorage: { gcQuietMs: 20, coalesceMs: 5 },
  destinationStorage: { gcQuietMs: 20, coalesceMs: 5 },
});
const chainBound = sites.job.maxChainDepth;
let deepest = 0;
let gcStalled = 0;
const started = Date.now();
let succeeded = 0;
let failedRuns = 0;
let verified = 0;
let leaked = -1;
try {
  for (let cycle = 1; cycle <= cycles + 1; cycle++) {
    for (const vm of ['web', 'db']) {
      for (const disk of sites.liveDisks(vm)) {
        for (let w = Math.floor(random() * 6); w > 0; w--) {
          const length = 512 * (1 + Math.floor(random() * 256));
          const offset = Math.floor(random() * ((32 * MiB - length) / 512)) * 512;
          sites.source.test.writeVdi(disk, offset, Buffer.alloc(length, Math.floor(random() * 256)));
        }
      }
    }
    const clean = cycle > cycles;
    if (opts.chains) {
      // a stalled GC (busy SR, slow storage) for a stretch of cycles, then it catches up
      if (gcStalled > 0) gcStalled--;
      else if (random() < 0.05) gcStalled = 5 + Math.floor(random() * 20);
      sites.destination.test.storage({ gcQuietMs: gcStalled > 0 ? 24 * 3600 * 1000 : 20 });
    }
    const fault = !clean && random() < 0.35 ? pick(faults) : undefined;
    const wrap = fault?.apply(sites);
    let status: string;
    try {
      status = (await sites.run(undefined, wrap)).status;
    } catch (err) {
      status = `aborted (${(err as Error).message.slice(0, 60)})`;
    }
    sites.source.test.clearFaults();
    sites.destination.test.clearFaults();
    if (fault?.abandon) sites.advanceClock(2 * 60 * 60 * 1000);
    if (status === 'succeeded') {
      succeeded++;
      sites.assertReplicasMatchSource('web');
      sites.assertReplicasMatchSource('db');
      verified++;
    } else failedRuns++;
    if (opts.chains) {
      const depth = Math.max(1, ...sites.destinationChainDepths());
      deepest = Math.max(deepest, depth);
      if (depth > chainBound)
        throw new Error(`cycle ${cycle}: a destination VHD chain of ${depth} > ${chainBound}`);
    }
    process.stderr.write(
      `cycle ${cycle}${clean ? ' (clean)' : ''}: ${status}${fault ? ` — fault: ${fault.name}` : ''}\n`,
    );
  }
  leaked = sites.leaks().length;
  sites.assertNoLeaks();
} finally {
  await sites.close();
}
report({ name: 'soak.cycles', value: cycles, unit: 'count', baseline: `seed ${opts.seed}` });
report({
  name: 'soak.verified_recovery_points',
  value: verified,
  unit: 'count',
  baseline: `${succeeded} successful runs, ${failedRuns} failed`,
});
report({
  name: 'soak.leaked_objects',
  value: leaked,
  unit: 'count',
  baseline: 'checked after a final clean cycle',
});
if (opts.chains) {
  report({
    name: 'soak.deepest_destination_chain',
    value: deepest,
    unit: 'count',
    baseline: `bound: maxChainDepth ${chainBound}`,
  });
}
report({
  name: 'soak.seconds',
  value: Math.round((Date.now() - started) / 1000),
  unit: 's',
  baseline: 'wall time',
});
