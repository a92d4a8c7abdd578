/**
 * `npm run bench [-- filter]`: runs every bench/*.bench.ts in its own process (so memory figures
 * of one benchmark do not leak into another), one after the other, and forwards their JSON lines
 * ({"name","value","unit","baseline"}) to stdout. Progress and errors go to stderr.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2];
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => !filter || f.includes(filter))
  .sort();

let failed = 0;
for (const file of files) {
  process.stderr.write(`bench: ${file}\n`);
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', join(here, file)], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  if (res.status !== 0) {
    failed++;
    process.stderr.write(`bench: ${file} failed (exit ${res.status})\n`);
  }
}
process.exitCode = failed ? 1 : 0;
