/** Loads one job's definition through the cache and reports whether aws-cdk-lib was loaded. */
import { createRequire } from 'node:module';
import { loadDefinition, type Machine } from '../../../cli/definition-cache.js';
import { parseConfig } from '../../../functions/config/load.js';

const [cacheDir, configJson, machine = 'run'] = process.argv.slice(2) as [string, string, Machine];
const config = parseConfig(JSON.parse(configJson));
const definition = await loadDefinition(config, config.jobs[0]!, { cacheDir, machine });
const cdkLoaded = Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/aws-cdk-lib/'));
process.stdout.write(JSON.stringify({ cdkLoaded, definition }));
