/**
 * `npm run test:faults`: the whole fault matrix (runs and drills), as a table and as JSON figures
 * (faults.scenarios, faults.failed, faults.leaked_objects). Exits non-zero if a scenario failed.
 */

import { table } from '../../cli/commands/common.js';
import { report } from '../support/figure.js';
import { runDrillMatrix } from './drill-scenarios.js';
import { discoverCalls, runScenario, scenarios } from './scenarios.js';

const filter = process.argv[2];
const all = scenarios(await discoverCalls()).filter((s) => !filter || s.name.includes(filter));
const results = [];
for (const s of all) {
  const r = await runScenario(s);
  process.stderr.write(`${r.passed ? 'pass' : 'FAIL'}  ${s.name}${r.detail ? `: ${r.detail}` : ''}\n`);
  results.push(r);
}
// Drills: their calls discovered by a drill, each scenario on one pair of pools in turn.
for (const r of (await runDrillMatrix(filter)).results) {
  process.stderr.write(`${r.passed ? 'pass' : 'FAIL'}  ${r.name}${r.detail ? `: ${r.detail}` : ''}\n`);
  results.push(r);
}
process.stderr.write(
  `\n${table(
    ['SCENARIO', 'PASSED', 'RECOVERY POINTS INTACT', 'LEAKED OBJECTS'],
    results.map((r) => [
      r.name,
      r.passed ? 'yes' : 'NO',
      r.recoveryPointsIntact ? 'yes' : 'NO',
      r.leakedObjects,
    ]),
  )}\n\n`,
);
const failed = results.filter((r) => !r.passed).length;
report({ name: 'faults.scenarios', value: results.length, unit: 'count', baseline: 'scenarios run' });
report({
  name: 'faults.failed',
  value: failed,
  unit: 'count',
  baseline: 'scenarios whose invariants did not hold',
});
report({
  name: 'faults.leaked_objects',
  value: results.reduce((sum, r) => sum + r.leakedObjects, 0),
  unit: 'count',
  baseline: 'objects left on either pool after the next successful run',
});
process.exitCode = failed ? 1 : 0;
