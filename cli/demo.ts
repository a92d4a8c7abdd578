/**
 * `npm start`: the embedded demo. Two simulated pools on loopback, a replication job whose
 * schedule runs several cycles (time compressed: 10 minutes of schedule pass in a few seconds)
 * through the same state machine definition the CDK app deploys, a guest that keeps writing, one
 * cycle slowed down so that the next one overlaps and is skipped, and every recovery point checked
 * against its source snapshot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../functions/config/load.js';
import { withRunContext } from '../functions/handlers/steps.js';
import { PoolSessions } from '../functions/replication/context.js';
import type { RunResult } from '../functions/replication/contract.js';
import { runDrill } from '../functions/replication/drill/run.js';
import { defaultLayout, type SimPool, startPool } from '../sim/index.js';
import { table } from './commands/common.js';
import { describeDrill } from './commands/drill.js';
import { verifyReplica } from './demo-verify.js';
import { jsonLogger, localDeps } from './local-deps.js';
import { localJobRunner } from './run-job.js';
import { runSchedule } from './schedule.js';

const CYCLES = 6;
const SCHEDULED_MINUTES = 10;
const COMPRESSED_MS = 8000; // one scheduled interval, in demo time
const SLOW_CYCLE = 3; // this run is slowed down so that the next tick overlaps it

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A running guest: random writes of 4 KiB–256 KiB within a working set (the first 64 MiB) of its disks. */
function startGuestWriter(pool: SimPool, vdis: { uuid: string; size: number }[]): () => void {
  const workingSet = 64 * 2 ** 20;
  const timer = setInterval(() => {
    for (const vdi of vdis) {
      const length = 4096 * (1 + Math.floor(Math.random() * 64));
      const offset = Math.floor(Math.random() * ((Math.min(vdi.size, workingSet) - length) / 4096)) * 4096;
      const data = Buffer.alloc(length);
      for (let i = 0; i < length; i += 4) data.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
      pool.test.writeVdi(vdi.uuid, offset, data);
    }
  }, 1000);
  return () => clearInterval(timer);
}

async function main(): Promise<number> {
  const layout = defaultLayout();
  const [source, destination] = (await Promise.all(layout.pools.map((spec) => startPool(spec)))) as [
    SimPool,
    SimPool,
  ];
  const stateDir = mkdtempSync(join(tmpdir(), 'xcr-demo-'));
  let stopWriter = () => {};
  try {
    say(
      `source pool ${source.name} at ${source.url}, destination pool ${destination.name} at ${destination.url}`,
    );
    const vms = source.test.objects('VM').filter(([, r]) => !r.is_control_domain && !r.is_a_snapshot);
    const config = parseConfig({
      version: 1,
      pools: {
        [source.name]: {
          url: source.url,
          username: source.username,
          password: { env: 'XCR_DEMO_SOURCE_PASSWORD' },
          allowPlainHttp: true,
        },
        [destination.name]: {
          url: destination.url,
          username: destination.username,
          password: { env: 'XCR_DEMO_DESTINATION_PASSWORD' },
          allowPlainHttp: true,
        },
      },
      jobs: [
        {
          id: 'demo',
          name: 'site-a to site-b',
          source: { pool: source.name },
          destination: { pool: destination.name, sr: { name: 'Replica storage' } },
          vms: { uuids: vms.map(([, r]) => r.uuid as string) },
          schedule: { rate: `${SCHEDULED_MINUTES} minutes` },
          retention: 3,
          concurrency: 2,
        },
      ],
    });
    const job = config.jobs[0]!;
    const env = {
      XCR_DEMO_SOURCE_PASSWORD: source.password,
      XCR_DEMO_DESTINATION_PASSWORD: destination.password,
    };
    const deps = localDeps({
      config,
      stateDir,
      env,
      logger: jsonLogger(process.env.XCR_DEMO_LOG ? (l) => process.stderr.write(`${l}\n`) : undefined),
    });
    say(
      `job "${job.id}": ${vms.length} VMs (${vms.map(([, r]) => r.name_label).join(', ')}), every ${SCHEDULED_MINUTES} minutes, retention ${job.retention}`,
    );
    say(`synthesizing the state machine (the CDK definition the AWS deployment uses)…`);
    const runner = localJobRunner(config, job, deps);

    const vdis = source.test
      .objects('VDI')
      .filter(([, r]) => !r.is_a_snapshot)
      .map(([, r]) => ({ uuid: r.uuid as string, size: Number(r.virtual_size) }));
    stopWriter = startGuestWriter(source, vdis);
    say(
      `guest writes running; ${CYCLES} cycles, ${SCHEDULED_MINUTES} scheduled minutes = ${COMPRESSED_MS / 1000} s here\n`,
    );

    const sessions = new PoolSessions(config, async (pool) =>
      pool === source.name ? env.XCR_DEMO_SOURCE_PASSWORD : env.XCR_DEMO_DESTINATION_PASSWORD,
    );
    const rows: (string | number)[][] = [];
    let verifiedAll = true;
    const outcomes: RunResult[] = [];
    await runSchedule({
      intervalMs: COMPRESSED_MS,
      cycles: CYCLES,
      onTick: async (tick, at) => {
        const slow = tick === SLOW_CYCLE;
        if (slow) source.test.latency(80);
        const started = Date.now();
        const run = await runner.run(at);
        if (slow) source.test.latency(0);
        outcomes.push(run);
        const kinds = [...new Set(run.vms.map((v) => v.kind ?? v.status))].join('+') || '-';
        let verified = '-';
        if (run.status !== 'skipped') {
          const checks = await Promise.all(
            run.vms
              .filter((v) => v.status === 'succeeded')
              .map(async (v) =>
                verifyReplica(
                  {
                    source: await sessions.get(source.name),
                    destination: await sessions.get(destination.name),
                    sourcePool: source,
                    destinationPool: destination,
                  },
                  job.id,
                  v.vmUuid,
                ),
              ),
          );
          const ok = checks.every((c) => c.ok) && checks.length === run.vms.length;
          verifiedAll &&= ok;
          verified = ok
            ? `yes (${checks.length} VMs)`
            : `NO: ${checks
                .filter((c) => !c.ok)
                .map((c) => c.detail)
                .join('; ')}`;
        }
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        const errors = run.vms
          .filter((v) => v.status === 'failed')
          .map((v) => `${v.vmUuid}: ${v.errorCode} ${v.message ?? ''}`);
        say(
          `cycle ${tick + 1}: ${run.status} ${kinds} ${(run.bytes / 1e6).toFixed(1)} MB in ${seconds} s${run.reason ? ` — ${run.reason}` : ''}`,
        );
        for (const e of errors) say(`  failed ${e}`);
        rows.push([tick + 1, run.status, kinds, (run.bytes / 1e6).toFixed(1), seconds, verified]);
      },
    });
    stopWriter();
    await sessions.closeAll();

    say(
      `\n${table(
        ['CYCLE', 'STATUS', 'KIND', 'MB SENT', 'SECONDS', 'VERIFIED'],
        rows.sort((a, b) => Number(a[0]) - Number(b[0])),
      )}`,
    );
    const rps = destination.test
      .objects('VM')
      .filter(([, r]) => (r.other_config as Record<string, string>)['xcr:status'] === 'complete');
    const snaps = source.test
      .objects('VM')
      .filter(([, r]) => (r.other_config as Record<string, string>)['xcr:job'] === job.id);
    say(
      `\ndestination: ${rps.length} recovery points (retention ${job.retention} × ${vms.length} VMs); source: ${snaps.length} base snapshots (one per VM)`,
    );
    say(
      "\nrecovery drill: each VM's newest recovery point cloned, booted without network, guest tools awaited, clone removed",
    );
    const drill = await withRunContext(deps, job.id, (ctx) =>
      runDrill(ctx, { drillRun: 'demo-drill', pollMs: 100 }),
    );
    say(describeDrill(drill));
    const drillLeft = destination.test
      .objects('VM')
      .filter(([, r]) => (r.other_config as Record<string, string>)['xcr:role'] === 'drill').length;
    const drillOk =
      drill.results.length === vms.length && drill.results.every((r) => r.passed) && drillLeft === 0;
    const skipped = outcomes.filter((o) => o.status === 'skipped').length;
    const failed = outcomes.filter((o) => o.status === 'failed' || o.status === 'partial').length;
    const ok = verifiedAll && failed === 0 && skipped >= 1 && drillOk;
    say(
      ok
        ? 'demo: every recovery point verified; the overlapping cycle was skipped; the drill booted every VM and left nothing.'
        : 'demo: something did not go as expected (see above).',
    );
    return ok ? 0 : 1;
  } finally {
    stopWriter();
    await Promise.all([source.close(), destination.close()]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
