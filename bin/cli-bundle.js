/**
 * The CLI as an esbuild bundle: starting from it saves the second of CPU that compiling ~130
 * TypeScript files with tsx costs on every `xcr` start. Dynamic imports stay separate chunks, so a
 * run loads aws-cdk-lib only when it synthesizes. Packages the sources import stay external
 * (resolved from node_modules at run time as before), except aws-local-stepfunctions: bundled, so
 * that what it imports for features the local runner does not use (the Lambda client and its
 * credential providers: every task state has a local handler; the definition validator: a cached
 * definition was validated before it was cached) is loaded when first used instead of at every
 * start, from where the package itself would load it (a third of a second of CPU).
 *
 * Built into <root>/.cli-bundle/ by `npm ci` / `npm install` (the prepare script runs this file)
 * or at the first start after a source changed: the entry's name carries a digest of every source
 * it can be made from, so an edit is never run stale. The directory sits one level below the
 * root because the sources find the root as `import.meta.dirname/..`.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sourceDigest } from './source-digest.js';

const root = join(import.meta.dirname, '..');
const outDir = join(root, '.cli-bundle');
/** Files of other builds are removed once this old (a running xcr may still import their chunks). */
const STALE_MS = 60 * 60 * 1000;

/** The bundle's entry for the sources as they are now (this file's build options and the lock included). */
export function bundleEntry() {
  const key = sourceDigest(
    root,
    ['cli', 'functions', 'infra'],
    ['bin/cli-bundle.js', 'bin/source-digest.js', 'package-lock.json'],
  );
  return join(outDir, `main-${key}.js`);
}

const BUNDLED = 'aws-local-stepfunctions';
/** What BUNDLED imports, by name → the module that stands for it: the same exports, loaded at first use. */
const DEFERRED = {
  'asl-validator': 'export default (...args) => load("asl-validator")(...args);',
  '@aws-sdk/client-lambda': `
    export class LambdaClient { constructor(config) { return new (load("@aws-sdk/client-lambda").LambdaClient)(config); } }
    export class InvokeCommand { constructor(input) { return new (load("@aws-sdk/client-lambda").InvokeCommand)(input); } }`,
  '@aws-sdk/credential-providers':
    'export const fromCognitoIdentityPool = (o) => load("@aws-sdk/credential-providers").fromCognitoIdentityPool(o);',
};
const LOAD = `import { createRequire } from "node:module";
const load = (name) => createRequire(createRequire(import.meta.url).resolve("${BUNDLED}"))(name);`;

/** Packages external, except BUNDLED and what it imports; DEFERRED as above. */
const packages = {
  name: 'xcr-packages',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (a) => {
      const fromPackage = a.importer.includes('/node_modules/');
      if (fromPackage && a.importer.includes(`/node_modules/${BUNDLED}/`) && a.path in DEFERRED)
        return { path: a.path, namespace: 'deferred' };
      if (fromPackage || a.path === BUNDLED) return undefined; // bundled, resolved as node would
      return { path: a.path, external: true };
    });
    build.onLoad({ filter: /.*/, namespace: 'deferred' }, (a) => ({
      contents: `${LOAD}\n${DEFERRED[a.path]}`,
      loader: 'js',
    }));
  },
};

/**
 * Builds the bundle for the sources as they are now. Several processes may build at once: each
 * builds in its own directory and renames its files into place, chunks first, so an entry that
 * exists always has its chunks.
 * @param {string} entry the path bundleEntry() returned
 */
export async function buildBundle(entry) {
  const esbuild = await import('esbuild');
  mkdirSync(outDir, { recursive: true });
  const tmp = mkdtempSync(join(outDir, '.build-'));
  try {
    const name = entry.slice(outDir.length + 1, -'.js'.length);
    await esbuild.build({
      entryPoints: { [name]: join(root, 'cli', 'main.ts') },
      outdir: tmp,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      plugins: [packages],
      sourcemap: 'linked', // node --enable-source-maps maps stack traces back to the sources
      logLevel: 'silent',
    });
    const files = readdirSync(tmp).sort((a, b) => Number(a.startsWith(name)) - Number(b.startsWith(name)));
    for (const f of files) renameSync(join(tmp, f), join(outDir, f));
    for (const f of readdirSync(outDir)) {
      const path = join(outDir, f);
      if (!files.includes(f) && path !== tmp && Date.now() - statSync(path).mtimeMs > STALE_MS)
        rmSync(path, { recursive: true, force: true });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// `node bin/cli-bundle.js` (the prepare script): build now; never fail an install over it, as
// bin/xcr.js builds or falls back to tsx at the next start.
if (process.argv[1] === import.meta.filename) {
  try {
    const entry = bundleEntry();
    if (!existsSync(entry)) await buildBundle(entry);
  } catch (err) {
    process.stderr.write(`xcr: the CLI bundle was not built (${err.message}); xcr will run through tsx\n`);
  }
}
