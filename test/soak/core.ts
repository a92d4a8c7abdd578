/**
 * The soak's cycles (used by `npm run soak` and by the short chain soak in npm test): a job with a
 * guest writing random data and a random fault injected into about a third of the cycles. After
 * every successful cycle the newest recovery point must equal the source snapshot it came from; at
 * the end, after one clean cycle, nothing may be left over on either pool. Bounded: small disks, at
 * most N + 1 runs.
 *
 * Both pools run SM's garbage collector with timings as compressed as the schedule. `chains` also
 * stalls the destination's GC now and then (a quiet period longer than many cycles), so chains grow
 * until the job's maxChainDepth and are then copied flat. After every cycle every VHD chain on the
 * destination must be at most maxChainDepth deep (the documented bound).
 */
import { discoverCalls } from '../faults/scenarios.js';
import { MiB, type Sites, type StepWrapper, startSites } from '../support/sites.js';

export interface SoakOptions {
  cycles: number;
  seed: number;
  /** Model GC stalls and check the chain bound after every cycle. */
  chains?: boolean;
  /** The job's maxChainDepth (default: the schema's). */
  maxChainDepth?: number;
  /** One line per cycle. */
  log?: (line: string) => void;
}

export interface SoakResult {
  succeeded: number;
  failedRuns: number;
  verified: number;
  leaked: number;
  /** Deepest destination chain seen after any cycle (chains mode), and the bound it was held to. */
  deepest: number;
  chainBound: number;
  seconds: number;
}

/** A small deterministic generator, so a failing soak can be replayed with its seed. */
function generator(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

interface Fault {
  name: string;
  apply(sites: Sites): StepWrapper | undefined;
  abandon?: boolean;
}

async function faultsOf(random: () => number): Promise<Fault[]> {
  const calls = await discoverCalls();
  return [
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
}

/** Runs the soak; throws at the first broken invariant (content, chain bound, leak). */
export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const random = generator(o.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const faults = await faultsOf(random);
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
    job: {
      retention: 3,
      fullInterval: o.chains ? 0 : 7,
      concurrency: 2,
      chainWaitSec: 1,
      ...(o.maxChainDepth ? { maxChainDepth: o.maxChainDepth } : {}),
    },
    // the schedule is compressed, so is the GC: with SM's 5-minute quiet period a source chain would
    // reach SM's limit of 30 after 30 quick cycles, as snapshots faster than coalescing do on a real SR
    sourceStorage: { gcQuietMs: 20, coalesceMs: 5 },
    destinationStorage: { gcQuietMs: 20, coalesceMs: 5 },
  });
  const r: SoakResult = {
    succeeded: 0,
    failedRuns: 0,
    verified: 0,
    leaked: -1,
    deepest: 0,
    chainBound: sites.job.maxChainDepth,
    seconds: 0,
  };
  const started = Date.now();
  let gcStalled = 0;
  try {
    for (let cycle = 1; cycle <= o.cycles + 1; cycle++) {
      for (const vm of ['web', 'db']) {
        for (const disk of sites.liveDisks(vm)) {
          for (let w = Math.floor(random() * 6); w > 0; w--) {
            const length = 512 * (1 + Math.floor(random() * 256));
            const offset = Math.floor(random() * ((32 * MiB - length) / 512)) * 512;
            sites.source.test.writeVdi(disk, offset, Buffer.alloc(length, Math.floor(random() * 256)));
          }
        }
      }
      const clean = cycle > o.cycles;
      if (o.chains) {
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
        r.succeeded++;
        sites.assertReplicasMatchSource('web');
        sites.assertReplicasMatchSource('db');
        r.verified++;
      } else r.failedRuns++;
      const line = `cycle ${cycle}${clean ? ' (clean)' : ''}: ${status}${fault ? ` — fault: ${fault.name}` : ''}`;
      if (o.chains) {
        const depth = Math.max(1, ...sites.destinationChainDepths());
        r.deepest = Math.max(r.deepest, depth);
        if (depth > r.chainBound)
          throw new Error(`${line}: a destination VHD chain of ${depth} > ${r.chainBound}`);
      }
      o.log?.(line);
    }
    r.leaked = sites.leaks().length;
    sites.assertNoLeaks();
  } finally {
    await sites.close();
  }
  r.seconds = Math.round((Date.now() - started) / 1000);
  return r;
}
