import { loadDefinition } from '../../cli/definition-cache.js';
import { parseConfig } from '../../functions/config/load.js';
import { ensureTools } from './ensure-tools.js';
import { minimalRawConfig } from './minimal-config.js';

/**
 * Checks the external tools every test may run (`npm test` has done so already; this covers
 * `npx vitest run …`), then synthesizes the workflow definitions the integration suites run once,
 * before any test file starts, so no test pays the seconds of loading aws-cdk-lib in its timeout.
 */
export default async function setup(): Promise<void> {
  ensureTools();
  const config = parseConfig(minimalRawConfig());
  for (const concurrency of [1, 2, 3, 4]) await loadDefinition(config, { ...config.jobs[0]!, concurrency });
  // The drill suites' job (concurrency 2, one point at a time): its run and drill definitions.
  const drill = parseConfig({
    ...minimalRawConfig(),
    jobs: [{ ...minimalRawConfig().jobs[0]!, drill: { every: { afterRuns: 1 } } }],
  });
  await loadDefinition(drill, drill.jobs[0]!, { machine: 'drill' });
}
