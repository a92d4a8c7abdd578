import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../../../functions/lease/file.js';

const CHILD = fileURLToPath(new URL('./race-child.ts', import.meta.url));
const CHILDREN = 5;
const ROUNDS = 60;

interface ChildReport {
  owner: string;
  rounds: boolean[];
  held: boolean[];
  stale: { acquired: boolean; holder?: string };
}

const root = await mkdtemp(join(tmpdir(), 'xcr-lease-xproc-'));
const children: ChildProcessWithoutNullStreams[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill();
  await rm(root, { recursive: true, force: true });
});

function start(owner: string): { child: ChildProcessWithoutNullStreams; lines: AsyncIterator<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, root, owner, String(ROUNDS)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.on('exit', (code) => {
    if (code) console.error(`child ${owner} exited ${code}: ${stderr}`);
  });
  return { child, lines: createInterface({ input: child.stdout })[Symbol.asyncIterator]() };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const { value, done } = await lines.next();
  if (done) throw new Error('child ended without output');
  return value;
}

describe('FileLeaseStore across processes', () => {
  it('lets exactly one of several processes win each key, keep a held one, or take over a stale one', async () => {
    const setup = new FileLeaseStore(root, { now: () => new Date(Date.now() - 3_600_000) });
    await setup.acquire('stale', 'dead-run', 1000);
    await new FileLeaseStore(root).acquire('held', 'proc-0', 60_000);

    const procs = Array.from({ length: CHILDREN }, (_, i) => start(`proc-${i}`));
    for (const p of procs) expect(await nextLine(p.lines)).toBe('ready');
    for (const p of procs) p.child.stdin.write('go\n');
    const reports = await Promise.all(
      procs.map(async (p) => JSON.parse(await nextLine(p.lines)) as ChildReport),
    );

    for (let r = 0; r < ROUNDS; r++) {
      expect(reports.filter((rep) => rep.rounds[r]).length, `round ${r}`).toBe(1);
    }
    for (const rep of reports) {
      expect(rep.held).toEqual(Array(ROUNDS).fill(rep.owner === 'proc-0'));
    }
    const staleWinners = reports.filter((rep) => rep.stale.acquired).map((rep) => rep.owner);
    expect(staleWinners).toHaveLength(1);
    for (const rep of reports) if (!rep.stale.acquired) expect(rep.stale.holder).toBe(staleWinners[0]);

    // The parent, a further process, sees the same outcome on disk while the holders live…
    const check = new FileLeaseStore(root);
    for (let r = 0; r < ROUNDS; r++) {
      const winner = reports.find((rep) => rep.rounds[r])!.owner;
      expect(await check.acquire(`round-${r}`, 'parent', 1000)).toMatchObject({
        acquired: false,
        holder: winner,
      });
    }
    // …and takes a lease over once its holder has exited (a dead process on this machine).
    const winner0 = reports.find((rep) => rep.rounds[0])!.owner;
    const holder = procs[Number(winner0.replace('proc-', ''))]!.child;
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    holder.stdin.end();
    await exited;
    expect(await check.acquire('round-0', 'parent', 1000)).toMatchObject({ acquired: true });
  });
});
