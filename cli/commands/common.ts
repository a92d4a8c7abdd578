import { findJob, loadConfigFile } from '../../functions/config/load.js';
import type { JobConfig, XcrConfig } from '../../functions/config/schema.js';
import { PoolSessions } from '../../functions/replication/context.js';
import type { HandlerDeps } from '../../functions/replication/ports.js';
import { connectionProblem } from '../../functions/replication/preflight.js';
import type { Xapi } from '../../functions/xapi/index.js';
import { defaultStateDir, envPasswordResolver, jsonLogger, localDeps } from '../local-deps.js';
import { EXIT } from './exit.js';

export { EXIT };

export interface GlobalOptions {
  config: string;
  json?: boolean;
}

export function load(opts: GlobalOptions): XcrConfig {
  return loadConfigFile(opts.config);
}

export function jobOf(config: XcrConfig, jobId: string | undefined): JobConfig {
  if (jobId) return findJob(config, jobId);
  if (config.jobs.length === 1) return config.jobs[0]!;
  throw Object.assign(
    new Error(
      `--job is required: the config has ${config.jobs.length} jobs (${config.jobs.map((j) => j.id).join(', ')})`,
    ),
    {
      name: 'UsageError',
    },
  );
}

/** A command's failure already phrased for the user, with its exit code. */
export class CliProblem extends Error {
  override readonly name = 'CliProblem';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Opens a pool of the config for a command, and always logs out. A pool that cannot be opened is
 *  reported under the config field to fix (url, password, tlsFingerprint, tlsCaFile). */
export async function withPool<T>(
  config: XcrConfig,
  pool: string,
  fn: (xapi: Xapi) => Promise<T>,
): Promise<T> {
  const sessions = new PoolSessions(config, envPasswordResolver(config));
  try {
    let xapi: Xapi;
    try {
      xapi = await sessions.get(pool);
    } catch (err) {
      const p = connectionProblem(config, pool, err as Error);
      throw new CliProblem(`${p.field}: ${p.message}`, p.kind === 'input' ? EXIT.badInput : EXIT.unreachable);
    }
    return await fn(xapi);
  } finally {
    await sessions.closeAll();
  }
}

export function print(opts: GlobalOptions, json: unknown, text: () => string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json, null, 2)}\n` : `${text()}\n`);
}

/** A fixed-width text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

/** The handler dependencies of a command run on this machine; step logs on stderr with --verbose. */
export function commandDeps(config: XcrConfig, verbose: boolean | undefined): HandlerDeps {
  return localDeps({
    config,
    stateDir: defaultStateDir(),
    logger: jsonLogger(verbose ? (line) => process.stderr.write(`${line}\n`) : undefined),
  });
}
