/**
 * `npm run soak -- --cycles N [--seed S] [--chains] [--max-chain-depth D]`: the soak of core.ts, one
 * line per cycle on stderr, its figures as JSON lines on stdout.
 */
import { Command } from 'commander';
import { report } from '../support/figure.js';
import { runSoak } from './core.js';

const opts = new Command('soak')
  .option('--cycles <n>', 'scheduled cycles', '30')
  .option('--seed <n>', 'random seed', '1')
  .option('--chains', 'model VHD chains and GC stalls; check the chain depth bound every cycle')
  .option('--max-chain-depth <n>', "the job's maxChainDepth (default: the schema's)")
  .parse(process.argv)
  .opts<{ cycles: string; seed: string; chains?: boolean; maxChainDepth?: string }>();

const r = await runSoak({
  cycles: Number(opts.cycles),
  seed: Number(opts.seed),
  chains: !!opts.chains,
  ...(opts.maxChainDepth ? { maxChainDepth: Number(opts.maxChainDepth) } : {}),
  log: (line) => process.stderr.write(`${line}\n`),
});
report({ name: 'soak.cycles', value: Number(opts.cycles), unit: 'count', baseline: `seed ${opts.seed}` });
report({
  name: 'soak.verified_recovery_points',
  value: r.verified,
  unit: 'count',
  baseline: `${r.succeeded} successful runs, ${r.failedRuns} failed`,
});
report({
  name: 'soak.leaked_objects',
  value: r.leaked,
  unit: 'count',
  baseline: 'checked after a final clean cycle',
});
if (opts.chains) {
  report({
    name: 'soak.deepest_destination_chain',
    value: r.deepest,
    unit: 'count',
    baseline: `bound: maxChainDepth ${r.chainBound}`,
  });
}
report({ name: 'soak.seconds', value: r.seconds, unit: 's', baseline: 'wall time' });
