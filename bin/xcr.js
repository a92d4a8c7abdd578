#!/usr/bin/env node
// The `xcr` command: runs the CLI's bundle (bin/cli-bundle.js), built first if a source changed; where
// it cannot be built (no esbuild, a read-only install) or XCR_NO_BUNDLE=1, the TypeScript through tsx.
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { buildBundle, bundleEntry } from './cli-bundle.js';

async function bundled() {
  if (process.env.XCR_NO_BUNDLE === '1') return undefined;
  try {
    const entry = bundleEntry();
    if (!existsSync(entry)) await buildBundle(entry);
    return entry;
  } catch {
    return undefined; // tsx reports a source that does not compile better than a failed build would
  }
}

const entry = await bundled();
if (entry) {
  await import(pathToFileURL(entry).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
