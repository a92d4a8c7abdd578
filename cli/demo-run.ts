/**
 * The embedded demo (`npm start`): two simulated pools on loopback, a replication job whose
 * schedule runs several cycles (time compressed: 10 minutes of schedule pass in a few seconds)
 * through the same state machine definition the CDK app deploys, a guest that keeps writing, one
 * run held until the next tick has come and been skipped, and every recovery point checked against
 * its source snapshot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../functions/config/load.js';
import { PoolSessions } from '../functions/replication/context.js';
import { type RunResult, STATE } from '../functions/replication/contract.js';
import { defaultLayout, type SimPool, startPool } from '../sim/index.js';
import { table } from './commands/common.js';
import { describeDrill } from './commands/drill.js';
import { verifyReplica } from './demo-verify.js';
import { isReport, localDrillRunner } from './drill-job.js';
import { jsonLogger, localDeps } from './local-deps.js';
import { executionName, localJobRunner, type StepWrapper } from './run-job.js';
import { runSchedule } from './schedule.js';

const SCHEDULED_MINUTES = 10;

export interface DemoOptions {
  cycles?: number;
  /** One scheduled interval, in demo time. */
  intervalMs?: number;
  /** The run (0-based tick) held until the next tick has ended; that next tick must be skipped. */
  holdTick?: number;
  /** Called after each non-skipped run, before its recovery points are verified (tests corrupt one). */
  afterRun?: (
    tick: number,
    run: RunResult,
    pools: { source: SimPool; destination: SimPool },
  ) => Promise<void>;
  write?: (line: string) => void;
}

/**
 * A guest writing: at every tick, `writes` random writes of 4 KiB–256 KiB per disk within a working set
 * (the first 64 MiB). What a guest writes per scheduled interval, not per second of this machine, so a
 * slow machine does not make the deltas (and the runs) grow.
 */
function guestWriter(pool: SimPool, vdis: { uuid: string; size: number }[], writes = 8): () => void {
  const workingSet = 64 * 2 ** 20;
  return () => {
    for (const vdi of vdis) {
      for (let n = 0; n < writes; n++) {
        const length = 4096 * (1 + Math.floor(Math.random() * 64));
        const offset = Math.floor(Math.random() * ((Math.min(vdi.size, workingSet) - length) / 4096)) * 4096;
        const data = Buffer.alloc(length);
        for (let i = 0; i < length; i += 4) data.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
        pool.test.writeVdi(vdi.uuid, offset, data);
      }
    }
  };
}

/**
 * Holds the run of one execution after it took the job's lease (at its first per-VM step) until
 * `release` is called: the overlap comes from the schedule, not from how fast this machine is.
 */
function holdRun(runId: () => string | undefined): {
  wrap: StepWrapper;
  held: Promise<void>;
  release(): void;
} {
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  let held = () => {};
  const heldPromise = new Promise<void>((resolve) => (held = resolve));
  const wrap: StepWrapper = (step, handler) =>
    step !== STATE.snapshotPrevious
      ? handler
      : async (input) => {
          if ((input as { runId?: string }).runId === runId()) {
            held();
            await released;
          }
          return handler(input);
        };
  return { wrap, held: heldPromise, release };
}

/** Runs the demo; resolves with the process exit code (0: every recovery point verified and the overlap skipped). */
export async function runDemo(o: DemoOptions = {}): Promise<number> {
  const cycles = o.cycles ?? 6;
  const intervalMs = o.intervalMs ?? 8000;
  const holdTick = o.holdTick ?? 2;
  if (holdTick < 0 || holdTick >= cycles - 1)
    throw new Error(`holdTick must be below cycles - 1 (${cycles - 1})`);
  const say = o.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const layout = defaultLayout();
  const [source, destination] = (await Promise.all(layout.pools.map((spec) => startPool(spec)))) as [
    SimPool,
    SimPool,
  ];
  const stateDir = mkdtempSync(join(tmpdir(), 'xcr-demo-'));
  let heldRunId: string | undefined;
  const hold = holdRun(() => heldRunId);
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
          // A daily drill on AWS; here the demo runs one at its end, as that schedule would.
          drill: { every: { rate: '1 days' }, network: 'none', check: 'tools', timeoutMinutes: 2 },
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
    say(`loading the state machine (the CDK definition the AWS deployment uses)…`);
    const runner = localJobRunner(config, job, deps, undefined, hold.wrap);

    const vdis = source.test
      .objects('VDI')
      .filter(([, r]) => !r.is_a_snapshot)
      .map(([, r]) => ({ uuid: r.uuid as string, size: Number(r.virtual_size) }));
    const guestWrites = guestWriter(source, vdis);
    say(
      `the guest writes before every cycle; ${cycles} cycles, ${SCHEDULED_MINUTES} scheduled minutes = ${intervalMs / 1000} s here; cycle ${holdTick + 1} is held until cycle ${holdTick + 2} has come\n`,
    );

    const sessions = new PoolSessions(config, async (pool) =>
      pool === source.name ? env.XCR_DEMO_SOURCE_PASSWORD : env.XCR_DEMO_DESTINATION_PASSWORD,
    );
    const rows: (string | number)[][] = [];
    let verifiedAll = true;
    const outcomes: RunResult[] = [];
    const overlapping: RunResult[] = [];
    const verify = async (run: RunResult): Promise<string> => {
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
      const bad = checks.filter((c) => !c.ok).map((c) => c.detail);
      return ok ? `yes (${checks.length} VMs)` : `NO: ${bad.join('; ') || 'not every VM succeeded'}`;
    };
    const cycle = async (tick: number, at: Date): Promise<void> => {
      if (tick === holdTick) heldRunId = executionName(job.id, at);
      if (tick > 0) guestWrites();
      const started = Date.now();
      const run = await runner.run(at).finally(() => {
        if (tick === holdTick + 1) hold.release();
      });
      if (tick === holdTick + 1) overlapping.push(run);
      outcomes.push(run);
      const kinds = [...new Set(run.vms.map((v) => v.kind ?? v.status))].join('+') || '-';
      let verified = '-';
      if (run.status !== 'skipped') {
        await o.afterRun?.(tick, run, { source, destination });
        verified = await verify(run);
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      say(
        `cycle ${tick + 1}: ${run.status} ${kinds} ${(run.bytes / 1e6).toFixed(1)} MB in ${seconds} s${run.reason ? ` — ${run.reason}` : ''}`,
      );
      for (const v of run.vms.filter((v) => v.status === 'failed')) {
        say(`  failed ${v.vmUuid}: ${v.errorCode} ${v.message ?? ''}`);
      }
      rows.push([tick + 1, run.status, kinds, (run.bytes / 1e6).toFixed(1), seconds, verified]);
    };
    const ticks: Promise<void>[] = [];
    await runSchedule({
      intervalMs,
      cycles,
      // Ten scheduled minutes are far longer than a run: in compressed time a tick waits for the
      // cycles before it, except the overlapping one, which starts once the held run has the lease.
      beforeTick: async (tick) => {
        if (tick === holdTick + 1) await Promise.race([hold.held, ticks[holdTick]]);
        else await Promise.allSettled(ticks);
      },
      onTick: (tick, at) => {
        const done = cycle(tick, at);
        ticks[tick] = done;
        return done;
      },
    });
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
      "\nrecovery drill (the synthesized drill state machine): each VM's newest recovery point cloned, booted without network, guest tools awaited, clone removed",
    );
    const outcome = await localDrillRunner(config, job, deps, {
      timing: { pollMs: 100 },
      checkWaitMs: 100,
    }).run({ drillRun: 'demo-drill' });
    if (!isReport(outcome)) throw new Error('the demo drill was not due');
    const drill = outcome;
    say(describeDrill(drill));
    const drillLeft = destination.test
      .objects('VM')
      .filter(([, r]) => (r.other_config as Record<string, string>)['xcr:role'] === 'drill').length;
    const drillOk = drill.status === 'passed' && drill.results.length === vms.length && drillLeft === 0;
    const failed = outcomes.filter((o) => o.status === 'failed' || o.status === 'partial').length;
    const overlapSkipped = overlapping[0]?.status === 'skipped';
    const ok = verifiedAll && failed === 0 && overlapSkipped && drillOk;
    say(
      ok
        ? 'demo: every recovery point verified; the overlapping cycle was skipped; the drill booted every VM and left nothing.'
        : `demo: something did not go as expected (${[
            verifiedAll ? '' : 'a recovery point did not verify',
            failed ? `${failed} run(s) failed` : '',
            drillOk ? '' : 'the recovery drill did not pass or left something behind',
            overlapSkipped
              ? ''
              : `cycle ${holdTick + 2} overlapped cycle ${holdTick + 1} but was not skipped`,
          ]
            .filter(Boolean)
            .join('; ')}).`,
    );
    return ok ? 0 : 1;
  } finally {
    hold.release();
    await Promise.all([source.close(), destination.close()]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}
