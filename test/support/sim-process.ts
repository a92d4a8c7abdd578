/**
 * A simulator in a process of its own (`sim/main.ts --config`), for benchmarks whose figures must
 * not share a thread, or a CPU count, with the simulated pools: its CPU time is read from /proc.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { processCpuSeconds } from './figure.js';

export interface SimProcessPool {
  name: string;
  url: string;
  username: string;
  password: string;
}

export interface SimProcess {
  pool: SimProcessPool;
  child: ChildProcess;
  /** CPU seconds (user + system) the simulator process has used so far. */
  cpuSeconds(): Promise<number>;
  stop(): void;
}

const root = join(import.meta.dirname, '..', '..');

/** Starts one pool from `spec` (a sim/config.ts pool), its config file written into `dir`. */
export async function startSimProcess(dir: string, name: string, spec: object): Promise<SimProcess> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ pools: [spec] }));
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'sim/main.ts'), '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`simulator ${name} exited ${code}`)));
  });
  return {
    pool: (JSON.parse(line) as { pools: SimProcessPool[] }).pools[0]!,
    child,
    cpuSeconds: () => processCpuSeconds(child.pid!),
    stop: () => child.kill('SIGTERM'),
  };
}
