/**
 * fleet.makespan_ratio: 20 VMs × 2 disks with 10 % of their 2 MiB blocks holding data, replicated by
 * one run of the synthesized workflow in the local runner (the first run sends exactly the allocated
 * blocks: the same bytes as a 10 % delta), with every data connection of both simulated pools capped
 * at 50 MB/s and each host at 400 MB/s in all. Ideal makespan = bytes on the wire /
 * min(host cap, streams × stream cap), with streams = concurrency × diskStreams; the figure is ideal /
 * measured (1 = the caps are the only limit). FLEET_VMS / FLEET_DISK_MIB shrink it to check the script.
 */
import { report } from '../test/support/figure.js';
import { MiB, startSites } from '../test/support/sites.js';

const VMS = Number(process.env.FLEET_VMS ?? 20);
const DISK = Number(process.env.FLEET_DISK_MIB ?? 1024) * MiB;
const BLOCK = 2 * MiB;
const STREAM_CAP = 50e6;
const HOST_CAP = 400e6;
const CONCURRENCY = 4;
const DISK_STREAMS = 2;

/** Every tenth 2 MiB block holds data (a shared fill buffer in the simulator: no memory per block). */
function tenPercent(seed: number) {
  const data = [];
  for (let b = seed % 10; b < DISK / BLOCK; b += 10)
    data.push({ offset: b * BLOCK, length: BLOCK, byte: (seed + b) % 255 || 1 });
  return data;
}

const vms = Array.from({ length: VMS }, (_, i) => ({
  name_label: `vm-${i}`,
  disks: [
    { sizeBytes: DISK, data: tenPercent(2 * i) },
    { sizeBytes: DISK, data: tenPercent(2 * i + 1) },
  ],
}));
const sites = await startSites({
  vms,
  job: { concurrency: CONCURRENCY, diskStreams: DISK_STREAMS },
  replicaSrBytes: 4 * VMS * DISK,
});
try {
  for (const pool of [sites.source, sites.destination]) {
    pool.test.throttle(STREAM_CAP);
    pool.test.hostThrottle(HOST_CAP);
  }
  const started = performance.now();
  const run = await sites.run();
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 'succeeded') throw new Error(`fleet run ${run.status}`);
  const streams = CONCURRENCY * DISK_STREAMS;
  const ideal = run.bytes / Math.min(HOST_CAP, streams * STREAM_CAP);
  report({
    name: 'fleet.makespan_ratio',
    value: Number((ideal / seconds).toFixed(3)),
    unit: 'ratio',
    baseline: `ideal makespan ${ideal.toFixed(1)} s = ${run.bytes} bytes / min(host cap 400 MB/s, ${streams} streams × 50 MB/s); measured ${seconds.toFixed(1)} s for ${VMS} VMs × 2 disks of ${DISK / MiB} MiB, 10 % allocated, concurrency ${CONCURRENCY}, diskStreams ${DISK_STREAMS}`,
    measuredSeconds: Number(seconds.toFixed(2)),
    idealSeconds: Number(ideal.toFixed(2)),
  });
} finally {
  await sites.close();
}
