/**
 * `npm run sim [-- --config <file>]`: start the pools of a config file (default: defaultLayout()),
 * print one JSON line {"pools":[{name,url,username,password}]} when ready, stop on SIGINT/SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { parseSimConfig } from './config.js';
import { defaultLayout } from './default-layout.js';
import { startPool } from './pool.js';
import type { SimPool } from './types.js';

async function main(): Promise<void> {
  const opts = new Command('sim')
    .description('XAPI pool simulator')
    .option('--config <file>', 'JSON file: { "pools": SimPoolSpec[] }')
    .parse(process.argv)
    .opts<{ config?: string }>();
  let config: ReturnType<typeof parseSimConfig>;
  if (opts.config) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(opts.config, 'utf8'));
    } catch (e) {
      throw new Error(`cannot read ${opts.config}: ${e instanceof Error ? e.message : String(e)}`);
    }
    config = parseSimConfig(json);
  } else {
    config = defaultLayout();
  }
  const pools: SimPool[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(pools.map((p) => p.close()));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  try {
    for (const spec of config.pools) pools.push(await startPool(spec));
  } catch (e) {
    await Promise.all(pools.map((p) => p.close()));
    throw e;
  }
  process.stdout.write(
    `${JSON.stringify({ pools: pools.map((p) => ({ name: p.name, url: p.url, username: p.username, password: p.password })) })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`sim: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
