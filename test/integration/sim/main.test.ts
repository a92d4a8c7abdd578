/** `npm run sim`: config validation, the ready line, clean stop; and the default layout. */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSimConfig } from '../../../sim/config.js';
import { defaultLayout, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const dir = mkdtempSync(join(tmpdir(), 'sim-main-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[]): {
  child: ChildProcess;
  line: Promise<string>;
  exit: Promise<number | null>;
  stderr: () => string;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', 'sim/main.ts', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const line = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.on('exit', () => reject(new Error(`exited before the ready line: ${err}`)));
  });
  line.catch(() => {});
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, line, exit, stderr: () => err };
}

describe('sim/main.ts', () => {
  it('starts the configured pools, prints one JSON line, stops on SIGTERM', async () => {
    const cfg = join(dir, 'pools.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        pools: [
          {
            name: 'a',
            password: 'pa',
            srs: [{ name_label: 'sr', sizeBytes: 1 << 28 }],
            vms: [{ name_label: 'v', disks: [{ sizeBytes: 1 << 22 }] }],
          },
          { name: 'b', hosts: 2 },
        ],
      }),
    );
    const p = run(['--config', cfg]);
    const ready = JSON.parse(await p.line) as {
      pools: { name: string; url: string; username: string; password: string }[];
    };
    expect(ready.pools.map((x) => x.name)).toEqual(['a', 'b']);
    expect(ready.pools[0]).toMatchObject({ username: 'root', password: 'pa' });
    expect(ready.pools[1]!.password.length).toBeGreaterThanOrEqual(12);
    const s = await TestSession.login(ready.pools[0]!.url, 'root', 'pa');
    expect(await s.call('VM.get_by_name_label', 'v')).toHaveLength(1);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(0);
  });

  it('rejects an invalid config with the path of every problem', async () => {
    const cfg = join(dir, 'bad.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        pools: [{ name: 'x', vms: [{ name_label: 'v', disks: [{ sizeBytes: 10, sr: 'nope' }] }], extra: 1 }],
      }),
    );
    const p = run(['--config', cfg]);
    expect(await p.exit).toBe(1);
    expect(p.stderr()).toContain('invalid simulator config');
    expect(p.stderr()).toContain('pools.0.vms.0.disks.0.sr');
    expect(p.stderr()).toMatch(/extra/);
  });
});

describe('config schema', () => {
  it('accepts the default layout and refuses duplicates and regions past the disk', () => {
    expect(() => parseSimConfig(defaultLayout())).not.toThrow();
    expect(() => parseSimConfig({ pools: [{ name: 'a' }, { name: 'a' }] })).toThrow(
      /duplicate pool name "a"/,
    );
    expect(() =>
      parseSimConfig({
        pools: [
          {
            name: 'a',
            srs: [{ name_label: 's', sizeBytes: 100 }],
            vms: [{ name_label: 'v', disks: [{ sizeBytes: 10, data: [{ offset: 5, length: 6 }] }] }],
          },
        ],
      }),
    ).toThrow(/pools\.0\.vms\.0\.disks\.0\.data\.0: region ends past the disk size/);
  });
});

describe('defaultLayout()', () => {
  it('site-a and site-b as documented', async () => {
    const [a, b] = defaultLayout().pools;
    const pa = await startPool(a!);
    const pb = await startPool(b!);
    try {
      const sa = await TestSession.login(pa.url, pa.username, pa.password);
      const vms = await sa.call<Record<string, Record<string, unknown>>>('VM.get_all_records');
      const user = Object.values(vms).filter((v) => !v.is_control_domain);
      expect(user.map((v) => `${v.name_label}:${v.power_state}`).sort()).toEqual([
        'appliance:Halted',
        'db-01:Running',
        'web-01:Running',
      ]);
      const sizes = pa.test
        .objects('VDI')
        .map(([, r]) => [r.virtual_size, r.physical_utilisation] as [number, number]);
      expect(sizes.map(([v]) => v / 2 ** 30).sort((x, y) => x - y)).toEqual([2, 8, 16]);
      // written data: ~40 + ~10 + ~60 MiB (block-granular allocation)
      const used = sizes.reduce((n, [, p]) => n + p, 0) / 2 ** 20;
      expect(used).toBeGreaterThanOrEqual(110);
      expect(used).toBeLessThan(200);
      const [sr] = await sa.call<string[]>('SR.get_by_name_label', 'Local storage');
      expect(await sa.call('SR.get_physical_size', sr)).toBe(String(200 * 2 ** 30));
      expect(await sa.call('network.get_by_name_label', 'Pool-wide network')).toHaveLength(1);
      const sb = await TestSession.login(pb.url, pb.username, pb.password);
      const [rsr] = await sb.call<string[]>('SR.get_by_name_label', 'Replica storage');
      expect(await sb.call('SR.get_physical_size', rsr)).toBe(String(500 * 2 ** 30));
      expect(await sb.call('network.get_by_name_label', 'Replica network')).toHaveLength(1);
      expect(pb.test.objects('VM').filter(([, r]) => !r.is_control_domain)).toEqual([]);
    } finally {
      await pa.close();
      await pb.close();
    }
  });
});
