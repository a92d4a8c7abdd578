import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MiB, type Sites, startSites } from '../../support/sites.js';

/**
 * `xcr run` on a real terminal (tmux, 80 columns): the bars show the disk's real total and an ETA
 * while the run goes, and the summary is printed below the stopped bars, not over them, each of its
 * lines whole within the 80 columns (tmux would wrap a longer one).
 */
const root = join(import.meta.dirname, '..', '..', '..');
const socket = `xcr-tty-${process.pid}`;
let sites: Sites;
let dir: string;

const tmux = (...args: string[]) => execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
const pane = () => tmux('capture-pane', '-p', '-t', 'xcr');

async function waitFor(test: (screen: string) => boolean, ms: number): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    const screen = pane();
    if (test(screen)) return screen;
    if (Date.now() > until) throw new Error(`timed out; the pane shows:\n${screen}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  sites = await startSites({
    vms: [
      {
        name_label: 'vm',
        disks: [{ sizeBytes: 64 * MiB, data: [{ offset: 0, length: 24 * MiB, seed: 3 }] }],
      },
    ],
    job: { bandwidthLimitMBps: 2 },
  });
  dir = mkdtempSync(join(tmpdir(), 'xcr-tty-'));
  writeFileSync(join(dir, 'xcr.json'), JSON.stringify(sites.config));
});
afterAll(async () => {
  try {
    tmux('kill-server');
  } catch {
    // already gone
  }
  await sites.close();
  rmSync(dir, { recursive: true, force: true });
});

it('draws real totals and an ETA, then prints the summary below the bars', { timeout: 180_000 }, async () => {
  const command = `node ${join(root, 'bin', 'xcr.js')} run -c ${join(dir, 'xcr.json')}; echo "EXIT=$?"; exec sleep 600`;
  execFileSync('tmux', ['-L', socket, 'new-session', '-d', '-s', 'xcr', '-x', '80', '-y', '24', command], {
    cwd: root,
    env: {
      ...process.env,
      XCR_STATE_DIR: join(dir, 'state'),
      XCR_TEST_A: sites.source.password,
      XCR_TEST_B: sites.destination.password,
    },
  });
  const bar = /disk (\S+) \|[█░]+\| (\d+)% ([\d.]+)\/([\d.]+) MB ETA (\d+s|\d+m\d+s)/;
  const during = await waitFor((s) => {
    const m = bar.exec(s);
    return !!m && Number(m[2]) > 0 && Number(m[2]) < 100;
  }, 120_000);
  const [, , , sent, total] = bar.exec(during)!;
  expect(Number(total)).toBeGreaterThan(24); // the VHD stream of 24 MiB of data, known before the first byte
  expect(Number(sent)).toBeLessThan(Number(total));
  expect(during).not.toMatch(/NaN|NF|\/0\.0 MB|\/0 MB/);

  const after = await waitFor((s) => s.includes('EXIT='), 120_000);
  const lines = after.split('\n');
  const summary = lines.findIndex((l) => /^run job1-\S+: succeeded, [\d.]+ MB$/.test(l));
  expect(summary, after).toBeGreaterThan(0);
  const done = lines.findIndex((l) => bar.test(l) && l.includes('100%'));
  expect(done, after).toBeGreaterThanOrEqual(0);
  expect(done).toBeLessThan(summary); // the bars stopped before the summary was printed
  expect(lines[done]).toContain(`${total}/${total} MB`);
  expect(after).toContain('EXIT=0');
  expect(lines[done]!.length).toBeLessThan(80); // drawn whole, not wrapped

  const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
  expect(lines[summary + 1]).toMatch(/^ {2}SOURCE VM\s+STATUS\s+KIND\s+MB\s+SECONDS$/);
  const row = new RegExp(`^ {2}(${uuid})\\s+succeeded\\s+full\\s+([\\d.]+)\\s+[\\d.]+$`).exec(
    lines[summary + 2]!,
  );
  expect(row, after).not.toBeNull();
  expect(row![1]).toBe(sites.vmUuid('vm'));
  expect(Number(row![2])).toBeGreaterThan(24); // the VM's MB: what was sent, as in the bars
  const point = new RegExp(`^ {4}recovery point (${uuid})$`).exec(lines[summary + 3]!);
  expect(point, after).not.toBeNull();
  expect(sites.recoveryPoints('vm').map((r) => r.uuid)).toContain(point![1]);
  expect(lines[summary + 4]).toMatch(/^EXIT=0/);
  for (const l of lines.slice(summary)) expect(l.length).toBeLessThanOrEqual(80);
});
