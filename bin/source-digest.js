// Plain JavaScript, because bin/xcr.js needs it before anything can compile TypeScript.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A short sha256 of every `.ts` file under `dirs` and of each of `files` (paths relative to `root`,
 * names and contents, in a stable order; a listed file that does not exist counts by its name only,
 * as an installed copy may lack the lock file).
 * @param {string} root
 * @param {readonly string[]} dirs
 * @param {readonly string[]} [files]
 * @returns {string}
 */
export function sourceDigest(root, dirs, files = []) {
  const hash = createHash('sha256');
  const ts = dirs.flatMap((dir) =>
    /** @type {string[]} */ (readdirSync(join(root, dir), { recursive: true }))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(dir, f)),
  );
  for (const f of [...ts, ...files].sort()) {
    hash.update(f);
    if (existsSync(join(root, f))) hash.update(readFileSync(join(root, f)));
  }
  return hash.digest('hex').slice(0, 16);
}
