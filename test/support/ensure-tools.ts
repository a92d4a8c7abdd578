/**
 * `npm test`'s first step (and the test suite's global setup): makes sure every external tool the
 * tests run is there before any test starts. Root with apt-get installs the missing Debian
 * packages; anyone else gets one message naming the tools, the packages and the command.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { planTools, systemProbe } from './tools.js';

export class MissingToolsError extends Error {
  override name = 'MissingToolsError';
}

/** Installs what is missing if it can, or throws a MissingToolsError saying what to run. */
export function ensureTools(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): void {
  const plan = planTools(systemProbe());
  if (plan.action === 'none') return;
  if (plan.action === 'stop') throw new MissingToolsError(plan.message);
  log(`tests: installing ${plan.packages.join(' ')} with apt-get (missing: ${plan.missing.join(', ')})`);
  for (const [cmd, ...args] of plan.commands) {
    const res = spawnSync(cmd!, args, {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (res.status !== 0) {
      throw new MissingToolsError(
        `${[cmd, ...args].join(' ')} failed (exit ${res.status ?? res.error?.message}): ${(res.stderr ?? '').trim().split('\n').slice(-3).join(' / ')}`,
      );
    }
  }
  const after = planTools(systemProbe());
  if (after.action !== 'none') {
    throw new MissingToolsError(
      `still missing after installing ${plan.packages.join(' ')}: ${after.missing.join(', ')}`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    ensureTools();
  } catch (err) {
    if (!(err instanceof MissingToolsError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 1;
  }
}
