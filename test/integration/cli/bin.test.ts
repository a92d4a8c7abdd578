import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';

/** `xcr` as an installed command: `npm install -g` puts it on the PATH; it runs from any directory. */
const root = join(import.meta.dirname, '..', '..', '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const run = promisify(execFile);
let prefix: string;

beforeAll(async () => {
  prefix = mkdtempSync(join(tmpdir(), 'xcr-prefix-'));
  await run('npm', ['install', '-g', '.', '--prefix', prefix, '--no-audit', '--no-fund'], {
    cwd: root,
    timeout: 120_000,
  });
}, 150_000);
afterAll(() => rmSync(prefix, { recursive: true, force: true }));

function xcr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(prefix, 'bin', 'xcr'), args, { cwd: prefix, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr }),
    );
  });
}

it('prints the package version', async () => {
  const r = await xcr(['--version']);
  expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
});

it('keeps the exit codes and --json of the CLI', async () => {
  const good = await xcr(['validate', join(root, 'xcr.config.example.json'), '--json']);
  expect(good.code).toBe(0);
  expect(JSON.parse(good.stdout)).toMatchObject({ valid: true });
  const bad = join(prefix, 'bad.json');
  writeFileSync(bad, JSON.stringify({ version: 2 }));
  const refused = await xcr(['validate', bad]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('version');
});
