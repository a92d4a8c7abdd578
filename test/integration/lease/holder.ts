import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./holder-child.ts', import.meta.url));

/** Starts a separate process that takes the lease `key` in `dir` as `owner` and hangs. */
export async function holdLeaseInChild(dir: string, key: string, owner: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, key, owner], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  if (line !== 'held') throw new Error(`child did not get the lease: ${line}`);
  return child;
}

/** Kills it the way a crash would (no cleanup runs) and waits until it is gone. */
export async function crash(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}
