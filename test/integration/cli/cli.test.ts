import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseKey } from '../../../functions/replication/context.js';
import { type SimPool, startPool } from '../../../sim/index.js';
import { crash, holdLeaseInChild } from '../lease/holder.js';

/**
 * The xcr command as a user runs it: spawned processes, exit codes, messages on stderr, --json.
 * Bad input (config fields, unreachable host, wrong password, wrong certificate, missing SR or VM)
 * must be refused with a message naming the field and the fix, and change nothing on either pool.
 */
const root = join(import.meta.dirname, '..', '..', '..');
const MiB = 2 ** 20;
let source: SimPool;
let destination: SimPool;
let tlsPool: SimPool;
let dir: string;
let vmUuid: string;
let otherCa: string;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function xcr(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'cli/main.ts'), ...args], {
      cwd: root,
      env: {
        ...process.env,
        XCR_STATE_DIR: join(dir, 'state'),
        SRC_PW: source.password,
        DST_PW: destination.password,
        TLS_PW: tlsPool.password,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function config(
  overrides: { source?: object; destination?: object; job?: object } = {},
): Record<string, unknown> {
  return {
    version: 1,
    pools: {
      src: {
        url: source.url,
        username: source.username,
        password: { env: 'SRC_PW' },
        allowPlainHttp: true,
        ...overrides.source,
      },
      dst: {
        url: destination.url,
        username: destination.username,
        password: { env: 'DST_PW' },
        allowPlainHttp: true,
        ...overrides.destination,
      },
    },
    jobs: [
      {
        id: 'web',
        source: { pool: 'src' },
        destination: { pool: 'dst', sr: { name: 'Replica storage' } },
        vms: { uuids: [vmUuid] },
        schedule: { rate: '15 minutes' },
        ...overrides.job,
      },
    ],
  };
}

/** The config with the destination on the TLS pool, verified as `tls` says. */
function tlsDestination(tls: { tlsFingerprint?: string; tlsCaFile?: string }): Record<string, unknown> {
  return config({
    destination: { url: tlsPool.url, password: { env: 'TLS_PW' }, allowPlainHttp: false, ...tls },
  });
}

function writeConfig(name: string, content: unknown): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

function inventory(): string {
  const count = (p: SimPool) =>
    (['VM', 'VDI', 'VBD', 'VIF', 'task'] as const).map((c) => p.test.objects(c).length).join('/');
  return `${count(source)} ${count(destination)}`;
}

function mutatingCalls(): string[] {
  const readOnly = /^(session\.|event\.from|task\.|.*\.get_|system\.)/;
  return [...source.test.calls(), ...destination.test.calls()].filter((m) => !readOnly.test(m));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xcr-cli-'));
  source = await startPool({
    name: 'src',
    srs: [{ name_label: 'Local storage', sizeBytes: 8 * 2 ** 30 }],
    networks: [{ name_label: 'net' }],
    vms: [
      {
        name_label: 'web',
        disks: [{ sizeBytes: 16 * MiB, data: [{ offset: 0, length: MiB, seed: 4 }] }],
        vifs: [{ network: 'net' }],
      },
    ],
  });
  destination = await startPool({
    name: 'dst',
    srs: [{ name_label: 'Replica storage', sizeBytes: 8 * 2 ** 30 }],
    networks: [{ name_label: 'replica net' }],
  });
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
  });
  tlsPool = await startPool({
    name: 'tls',
    tls: { cert: pems.cert, key: pems.private },
    srs: [{ name_label: 'Replica storage', sizeBytes: 2 ** 30 }],
  });
  const other = await generate([{ name: 'commonName', value: 'another-ca' }], {
    keySize: 2048,
    algorithm: 'sha256',
  });
  otherCa = join(dir, 'other-ca.pem');
  writeFileSync(otherCa, other.cert);
  vmUuid = source.test.objects('VM').find(([, r]) => r.name_label === 'web')![1].uuid as string;
});

afterAll(async () => {
  await Promise.all([source?.close(), destination?.close(), tlsPool?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('xcr validate', () => {
  it('accepts a valid file (--json) and names each invalid field with exit code 2', async () => {
    const ok = await xcr(['validate', writeConfig('ok', config()), '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, jobs: ['web'] });
    expect(JSON.parse(ok.stdout).monthlyCost).toEqual([
      expect.objectContaining({ jobId: 'web', region: 'us-east-1', usdPerVmMonth: expect.any(Number) }),
    ]);
    const text = await xcr(['validate', writeConfig('ok', config())]);
    expect(text.stdout).toMatch(/monthly AWS cost estimate:\n {2}web: ≈ \$[\d.]+ per VM-month/);
    const bad = await xcr([
      'validate',
      writeConfig('bad', config({ job: { retention: 0, schedule: { rate: '1 minute' } } })),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/jobs\.0\.retention: keep at least 1 recovery point/);
    expect(bad.stderr).toMatch(/jobs\.0\.schedule\.rate: must be between 10 minutes and 24 hours/);
  });

  it('--connect checks each job against its pools: every unmapped source network is named, nothing changes', async () => {
    const before = inventory();
    const file = writeConfig(
      'unmapped',
      config({
        job: {
          destination: { pool: 'dst', sr: { name: 'Replica storage' }, networkMap: { lan: 'replica net' } },
        },
      }),
    );
    const offline = await xcr(['validate', file]);
    expect(offline.code).toBe(0);
    const r = await xcr(['validate', file, '--connect', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /jobs\[web\]\.destination\.networkMap: source network "net" \([0-9a-f-]{36}\) maps to no destination network; add "net" or "\*"/,
    );
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false });
    expect(inventory()).toBe(before);
  });
});

describe('xcr run refuses bad input and changes nothing', () => {
  const cases: [string, () => Record<string, unknown>, number, RegExp][] = [
    ['an invalid config field', () => config({ job: { concurrency: 0 } }), 2, /jobs\.0\.concurrency/],
    [
      'a network map naming a destination network that does not exist',
      () =>
        config({
          job: { destination: { pool: 'dst', sr: { name: 'Replica storage' }, networkMap: { '*': 'nope' } } },
        }),
      2,
      /destination\.networkMap\["\*"\]: no destination network has uuid or name "nope"/,
    ],
    [
      'an unreachable host',
      () => config({ source: { url: 'http://127.0.0.1:9' } }),
      3,
      /pools\.src\.url: cannot reach pool "src"/,
    ],
    [
      'a wrong password',
      () => config({ destination: { password: { env: 'WRONG_PW' } } }),
      3,
      /pools\.dst\.password: pool "dst" refused .*WRONG_PW/,
    ],
    [
      'a wrong TLS fingerprint',
      () => tlsDestination({ tlsFingerprint: 'ab'.repeat(32) }),
      3,
      /pools\.dst\.tlsFingerprint: .*does not match/,
    ],
    [
      'an unset password variable (not a network problem)',
      () => config({ destination: { password: { env: 'XCR_UNSET_PW' } } }),
      2,
      /^xcr: pools\.dst\.password: the environment variable XCR_UNSET_PW is not set; export it/m,
    ],
    [
      'a secret reference in a local run',
      () => config({ source: { password: { secret: 'xcr/site-a' } } }),
      2,
      /pools\.src\.password: refers to the Secrets Manager secret "xcr\/site-a"/,
    ],
    [
      'a tlsCaFile that does not exist',
      () => tlsDestination({ tlsCaFile: join(dir, 'no-such-ca.pem') }),
      2,
      /pools\.dst\.tlsCaFile: cannot read the CA file .*no-such-ca\.pem \(ENOENT\)/,
    ],
    [
      'a tlsCaFile with another CA',
      () => tlsDestination({ tlsCaFile: otherCa }),
      3,
      /pools\.dst\.tlsCaFile: pool "dst" presented a certificate that the CA in .* does not verify/,
    ],
    [
      'a missing SR',
      () => config({ job: { destination: { pool: 'dst', sr: { name: 'Nope' } } } }),
      2,
      /destination\.sr: no SR with name "Nope".*available: "Replica storage"/,
    ],
    [
      'a VM uuid that does not exist',
      () => config({ job: { vms: { uuids: ['00000000-0000-4000-8000-000000000001'] } } }),
      2,
      /vms\.uuids: no VM with uuid 0{8}-0000-4000-8000-000000000001/,
    ],
  ];
  it.each(cases)('%s', async (_name, make, exitCode, message) => {
    const before = inventory();
    const callsBefore = mutatingCalls().length;
    const res = await xcr(['run', '-c', writeConfig('case', make())], { WRONG_PW: 'not-the-password' });
    expect(res.stderr).toMatch(message);
    expect(res.code).toBe(exitCode);
    expect(inventory()).toBe(before);
    expect(mutatingCalls().length).toBe(callsBefore);
    expect(res.stderr).not.toMatch(exitCode === 2 ? /cannot reach|VPN/ : /^$/);
  });
});

describe('each command names the pool, field and fix that apply to it', () => {
  it('an unknown config key gets the closest known key (exit 2)', async () => {
    const res = await xcr(['validate', writeConfig('typo', config({ job: { retension: 3 } }))]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/jobs\.0\.retension: unknown key; did you mean `retention`\?/);
  });

  it('recovery-points with a wrong pin names the pool and tlsFingerprint (exit 3)', async () => {
    const file = writeConfig('pin', tlsDestination({ tlsFingerprint: 'cd'.repeat(32) }));
    const res = await xcr(['recovery-points', 'web', '-c', file]);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(
      /^xcr: pools\.dst\.tlsFingerprint: pool "dst" presented a certificate that does not match/m,
    );
  });

  it('recovery-points with an unset password variable names it (exit 2)', async () => {
    const res = await xcr([
      'recovery-points',
      'web',
      '-c',
      writeConfig('nopw', config({ destination: { password: { env: 'XCR_UNSET_PW' } } })),
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/pools\.dst\.password: the environment variable XCR_UNSET_PW is not set/);
  });

  it('clone of an unknown uuid names the destination pool and the recovery point (exit 2)', async () => {
    const res = await xcr([
      'clone',
      '00000000-0000-4000-8000-000000000009',
      '-c',
      writeConfig('clone', config()),
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(
      /no recovery point 00000000-0000-4000-8000-000000000009 of job web on the destination pool "dst"; list them with `xcr recovery-points web`/,
    );
    expect(res.stderr).not.toMatch(/source pool|job's vms/);
  });

  it('unlock refuses while the holder is alive (exit 2) and clears a dead holder’s lease (exit 0)', async () => {
    const file = writeConfig('unlock', config());
    const stateDir = join(dir, 'state');
    const live = await holdLeaseInChild(stateDir, leaseKey('web'), 'run-alive');
    try {
      const refused = await xcr(['unlock', 'web', '-c', file]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        new RegExp(`run run-alive is still running \\(pid ${live.pid} on this host`),
      );
    } finally {
      await crash(live);
    }
    const cleared = await xcr(['unlock', 'web', '-c', file]);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toMatch(/job web: cleared the lease of run run-alive/);
    const again = await xcr(['unlock', 'web', '-c', file]);
    expect(again.stdout).toMatch(/no run holds the lease/);
  });
});

describe('xcr as an operator uses it', () => {
  it('runs a job, lists recovery points, reports status and clones a recovery point', async () => {
    const file = writeConfig('good', config());
    const run = await xcr(['run', '-c', file, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(result).toMatchObject({
      jobId: 'web',
      status: 'succeeded',
      vms: [{ vmUuid, status: 'succeeded', kind: 'full' }],
    });

    const rps = await xcr(['recovery-points', 'web', '-c', file, '--json']);
    expect(rps.code).toBe(0);
    const [rp] = JSON.parse(rps.stdout);
    expect(rp).toMatchObject({ uuid: result.vms[0].recoveryPoint, sourceVm: vmUuid, chain: 0 });

    const status = await xcr(['status', '-c', file, '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)[0]).toMatchObject({
      jobId: 'web',
      lastRuns: [{ status: 'succeeded' }],
      vms: [{ vm: vmUuid, recoveryPoints: 1 }],
    });

    const drill = await xcr(['drill', 'web', '-c', file, '--json']);
    expect(drill.stderr).toBe('');
    expect(drill.code).toBe(0);
    expect(JSON.parse(drill.stdout).results).toMatchObject([
      { recoveryPoint: rp.uuid, vm: vmUuid, passed: true },
    ]);
    const drilled = await xcr(['recovery-points', 'web', '-c', file, '--json']);
    expect(JSON.parse(drilled.stdout)[0].drill).toMatch(/^passed /);
    const status2 = await xcr(['status', '-c', file, '--json']);
    expect(JSON.parse(status2.stdout)[0].vms[0].lastDrill).toMatch(/^passed /);

    const clone = await xcr(['clone', rp.uuid, '-c', file, '--name', 'web restored', '--json']);
    expect(clone.code).toBe(0);
    const cloned = destination.test.objects('VM').find(([, r]) => r.uuid === JSON.parse(clone.stdout).vm)![1];
    expect(cloned).toMatchObject({ name_label: 'web restored', blocked_operations: {} });

    const missing = await xcr(['clone', '00000000-0000-4000-8000-000000000002', '-c', file]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no recovery point/);
  }, 240_000);

  it('xcr run drills after the run when drill.every is { afterRuns: 1 }, through the drill state machine', async () => {
    const file = writeConfig('drill-after', config({ job: { drill: { every: { afterRuns: 1 } } } }));
    const run = await xcr(['run', '-c', file, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const [result, drill] = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(result).toMatchObject({ jobId: 'web', status: 'succeeded' });
    expect(drill).toMatchObject({
      jobId: 'web',
      status: 'passed',
      results: [{ recoveryPoint: result.vms[0].recoveryPoint, vm: vmUuid, passed: true }],
    });
    expect(
      destination.test
        .objects('VM')
        .filter(([, r]) => (r.other_config as Record<string, string>)['xcr:role'] === 'drill'),
    ).toEqual([]);
  });

  it('fails over, refuses a second failover, undoes only when confirmed, refuses a failback or undo without failover (exit 2)', async () => {
    const file = writeConfig('failover', config());
    expect((await xcr(['run', '-c', file, '--json'])).code).toBe(0);
    const done = await xcr(['failover', 'web', '-c', file]);
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toMatch(new RegExp(`${vmUuid}\\s+failed-over`));
    const again = await xcr(['failover', 'web', '-c', file, '--json']);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stdout).vms).toMatchObject([
      { vm: vmUuid, status: 'refused', code: 'ALREADY_FAILED_OVER' },
    ]);
    const unconfirmed = await xcr(['failover', '--undo', 'web', '-c', file, '--vm', vmUuid]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/not confirmed.*--yes/);
    const undone = await xcr(['failover', '--undo', 'web', '-c', file, '--vm', vmUuid, '--yes', '--json']);
    expect(undone.code).toBe(0);
    expect(JSON.parse(undone.stdout).vms).toMatchObject([{ vm: vmUuid, status: 'undone' }]);
    // refusals (the state does not allow what was asked) exit 2, as bad input does
    const failback = await xcr(['failback', 'web', '-c', file, '--vm', vmUuid]);
    expect(failback.code).toBe(2);
    expect(failback.stderr).toMatch(/NOT_FAILED_OVER: .* is not failed over/);
    const undoAgain = await xcr(['failover', '--undo', 'web', '-c', file, '--vm', vmUuid, '--yes']);
    expect(undoAgain.code).toBe(2);
    expect(undoAgain.stderr).toMatch(/NOT_FAILED_OVER: .* nothing to undo/);
  }, 240_000);
});
