/**
 * cbt transfer mode vs vhd mode, each against its own pair of simulated pools through the workflow.
 * - cbt.wire_ratio_scattered: 256 scattered 4 KiB guest writes over a 16 GiB disk; bytes the delta
 *   run sends in vhd mode divided by the bytes it sends in cbt mode (same change set).
 * - cbt.throughput_ratio: a sequential 256 MiB delta; (changed bytes / stream-delta time) in cbt mode
 *   divided by the same in vhd mode, best of 3 runs each. The two simulators run in processes of
 *   their own (they shared this process's thread before, and the NBD server's CPU counted against
 *   cbt mode); beside the figure, each simulator's CPU seconds per GB of changed data during
 *   stream-delta, and this process's (xcr's), for both modes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLogger, localDeps } from '../cli/local-deps.js';
import { parseConfig } from '../functions/config/load.js';
import { createStepHandlers, type StepHandler } from '../functions/handlers/steps.js';
import { FileLeaseStore } from '../functions/lease/index.js';
import { Xapi } from '../functions/xapi/index.js';
import { report } from '../test/support/figure.js';
import { runLocalExecution } from '../test/support/run-local.js';
import { type SimProcessPool, startSimProcess } from '../test/support/sim-process.js';
import { MiB, type Sites, startSites } from '../test/support/sites.js';

const GiB = 1024 * MiB;
type Mode = 'vhd' | 'cbt';

async function sitesFor(mode: Mode, sizeBytes: number): Promise<Sites> {
  return startSites({
    vms: [{ name_label: 'vm', disks: [{ sizeBytes, data: [{ offset: 0, length: MiB, seed: 1 }] }] }],
    job: { transferMode: mode, enableCbt: true, cbtChunkMiB: 1024 },
    sourceNbdPurpose: 'insecure_nbd',
    replicaSrBytes: 64 * GiB,
  });
}

async function wireBytes(mode: Mode): Promise<number> {
  const sites = await sitesFor(mode, 16 * GiB);
  try {
    await sites.run();
    const [disk] = sites.liveDisks('vm');
    // deterministic scatter: 256 writes, 64 MiB apart, at varying offsets inside their 2 MiB block
    for (let k = 0; k < 256; k++) {
      const offset = k * 64 * MiB + ((k * 7919) % 512) * 4096;
      sites.source.test.writeVdi(disk!, offset, Buffer.alloc(4096, (k % 255) + 1));
    }
    const result = await sites.run();
    if (result.status !== 'succeeded' || result.vms[0]!.kind !== 'delta')
      throw new Error(`${mode} delta failed`);
    sites.assertReplicasMatchSource('vm');
    return result.bytes;
  } finally {
    await sites.close();
  }
}

/** Pool specs of the throughput runs: the two sites of test/support/sites.ts, as simulator configs. */
const SOURCE_SPEC = {
  name: 'site-a',
  networks: [{ name_label: 'Pool-wide network' }],
  srs: [{ name_label: 'Local storage', sizeBytes: 64 * GiB, shared: true }],
  vms: [{ name_label: 'vm', disks: [{ sizeBytes: 4 * GiB, data: [{ offset: 0, length: MiB, seed: 1 }] }] }],
};
const DESTINATION_SPEC = {
  name: 'site-b',
  networks: [{ name_label: 'Replica network' }],
  srs: [{ name_label: 'Replica storage', sizeBytes: 64 * GiB, shared: true }],
};

interface Rate {
  mbPerSecond: number;
  /** CPU seconds per GB of changed data during stream-delta: each simulator, and this process (xcr). */
  sourceSimCpuSecondsPerGB: number;
  destinationSimCpuSecondsPerGB: number;
  xcrCpuSecondsPerGB: number;
}

/**
 * The simulated pools run in processes of their own, so the figure times xcr's data path rather
 * than the simulators sharing its thread, and their own CPU per GB is read from /proc beside it.
 */
async function throughput(mode: Mode, changed: number): Promise<Rate> {
  const dir = mkdtempSync(join(tmpdir(), 'xcr-cbt-bench-'));
  const source = await startSimProcess(dir, 'source', SOURCE_SPEC);
  const destination = await startSimProcess(dir, 'destination', DESTINATION_SPEC);
  const connect = (p: SimProcessPool) =>
    Xapi.connect({ url: p.url, username: p.username, password: p.password, allowPlainHttp: true });
  const [src, dst] = [await connect(source.pool), await connect(destination.pool)];
  try {
    for (const ref of (await src.getAllRecords('network')).keys())
      await src.call('network.add_purpose', ref, 'insecure_nbd');
    const vm = [...(await src.getAllRecords('VM')).values()].find((v) => v.name_label === 'vm')!;
    const vdis = await src.getAllRecords('VDI');
    const disk = [...vdis.values()].find((v) => v.virtual_size === 4 * GiB && !v.is_a_snapshot)!.uuid;
    const config = parseConfig({
      version: 1,
      pools: {
        a: {
          url: source.pool.url,
          username: source.pool.username,
          password: { env: 'A' },
          allowPlainHttp: true,
        },
        b: {
          url: destination.pool.url,
          username: destination.pool.username,
          password: { env: 'B' },
          allowPlainHttp: true,
        },
      },
      jobs: [
        {
          id: 'job1',
          source: { pool: 'a' },
          destination: { pool: 'b', sr: { name: 'Replica storage' } },
          vms: { uuids: [vm.uuid] },
          schedule: { rate: '10 minutes' },
          retention: 3,
          transferMode: mode,
          enableCbt: true,
          cbtChunkMiB: 1024,
        },
      ],
    });
    const job = config.jobs[0]!;
    const deps = localDeps({
      config,
      stateDir: dir,
      leases: new FileLeaseStore(dir),
      env: { A: source.pool.password, B: destination.pool.password },
      logger: jsonLogger(undefined),
    });
    const handlers = createStepHandlers(deps);
    let runs = 0;
    const run = async (wrap?: (step: string, h: StepHandler) => StepHandler) => {
      const wrapped = wrap
        ? Object.fromEntries(Object.entries(handlers).map(([step, h]) => [step, wrap(step, h)]))
        : handlers;
      const result = await runLocalExecution(config, job, deps, wrapped, `run-${++runs}`);
      if (result.status !== 'succeeded') throw new Error(`${mode} run failed`);
    };
    await run();
    let best: Rate | undefined;
    for (let i = 0; i < 3; i++) {
      await src.call('sim.fill_vdi', disk, String(GiB), String(changed), String(i + 1));
      const acc = { ms: 0, source: 0, destination: 0, xcr: 0 };
      await run((step, handler) =>
        step !== 'stream-delta'
          ? handler
          : async (input) => {
              const [s0, d0, x0] = [
                await source.cpuSeconds(),
                await destination.cpuSeconds(),
                process.cpuUsage(),
              ];
              const started = performance.now();
              try {
                return await handler(input);
              } finally {
                acc.ms += performance.now() - started;
                const x = process.cpuUsage(x0);
                acc.xcr += (x.user + x.system) / 1e6;
                acc.source += (await source.cpuSeconds()) - s0;
                acc.destination += (await destination.cpuSeconds()) - d0;
              }
            },
      );
      const gb = changed / 1e9;
      const rate: Rate = {
        mbPerSecond: changed / 1e6 / (acc.ms / 1000),
        sourceSimCpuSecondsPerGB: acc.source / gb,
        destinationSimCpuSecondsPerGB: acc.destination / gb,
        xcrCpuSecondsPerGB: acc.xcr / gb,
      };
      if (!best || rate.mbPerSecond > best.mbPerSecond) best = rate;
    }
    await assertReplicaMatches(src, dst, disk, vm.uuid);
    return best!;
  } finally {
    await Promise.allSettled([src.logout(), dst.logout()]);
    source.stop();
    destination.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The newest recovery point's disk holds what the source disk holds (the simulators' content hash). */
async function assertReplicaMatches(src: Xapi, dst: Xapi, disk: string, vmUuid: string): Promise<void> {
  const rp = [...(await dst.getAllRecords('VM')).values()]
    .filter((r) => r.other_config['xcr:vm'] === vmUuid && r.other_config['xcr:status'] === 'complete')
    .sort((a, b) => (b.other_config['xcr:time'] ?? '').localeCompare(a.other_config['xcr:time'] ?? ''))[0];
  if (!rp) throw new Error('no recovery point');
  const vbds = await dst.getAllRecords('VBD');
  const vdis = await dst.getAllRecords('VDI');
  const replica = (rp.VBDs as string[]).map((ref) => vbds.get(ref)!).find((v) => v.type === 'Disk')!;
  const [want, got] = [
    await src.call<string>('sim.hash_vdi', disk),
    await dst.call<string>('sim.hash_vdi', vdis.get(replica.VDI as string)!.uuid),
  ];
  if (want !== got) throw new Error(`replica differs from the source disk (${got} ≠ ${want})`);
}

const vhdWire = await wireBytes('vhd');
const cbtWire = await wireBytes('cbt');
report({
  name: 'cbt.wire_ratio_scattered',
  value: Number((vhdWire / cbtWire).toFixed(2)),
  unit: 'ratio',
  baseline: 'vhd mode bytes on the wire for the same 256 scattered 4 KiB writes (16 GiB disk)',
  vhdBytes: vhdWire,
  cbtBytes: cbtWire,
});

const changed = 256 * MiB;
const vhdRate = await throughput('vhd', changed);
const cbtRate = await throughput('cbt', changed);
const r1 = (x: number) => Number(x.toFixed(1));
const r2 = (x: number) => Number(x.toFixed(2));
report({
  name: 'cbt.throughput_ratio',
  value: r2(cbtRate.mbPerSecond / vhdRate.mbPerSecond),
  unit: 'ratio',
  baseline:
    'vhd mode MB/s on the same sequential 256 MiB delta (stream-delta time, best of 3; simulators in processes of their own)',
  vhdMBps: r1(vhdRate.mbPerSecond),
  cbtMBps: r1(cbtRate.mbPerSecond),
  // CPU seconds per GB of changed data during stream-delta, beside the figure they could blur
  vhdSimCpuSecondsPerGB: {
    source: r2(vhdRate.sourceSimCpuSecondsPerGB),
    destination: r2(vhdRate.destinationSimCpuSecondsPerGB),
  },
  cbtSimCpuSecondsPerGB: {
    source: r2(cbtRate.sourceSimCpuSecondsPerGB),
    destination: r2(cbtRate.destinationSimCpuSecondsPerGB),
  },
  xcrCpuSecondsPerGB: { vhd: r2(vhdRate.xcrCpuSecondsPerGB), cbt: r2(cbtRate.xcrCpuSecondsPerGB) },
});
