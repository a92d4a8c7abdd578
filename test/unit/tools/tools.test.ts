import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onPath, planTools, systemProbe, TOOLS, type Tool } from '../../support/tools.js';

const dir = mkdtempSync(join(tmpdir(), 'xcr-tools-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fakeTool(name: string, exitCode = 0): void {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\nexit ${exitCode}\n`);
  chmodSync(file, 0o755);
}

const SOME: Tool[] = [
  { command: 'qemu-img', pkg: 'qemu-utils' },
  { command: 'qemu-nbd', pkg: 'qemu-utils' },
  { command: 'nbdinfo', pkg: 'libnbd-bin' },
];

describe('planTools', () => {
  it.each([
    {
      name: 'everything present',
      have: ['qemu-img', 'qemu-nbd', 'nbdinfo'],
      root: false,
      apt: true,
      action: 'none',
    },
    { name: 'root with apt-get installs', have: ['nbdinfo'], root: true, apt: true, action: 'install' },
    { name: 'not root stops', have: ['nbdinfo'], root: false, apt: true, action: 'stop' },
    { name: 'root without apt-get stops', have: ['nbdinfo'], root: true, apt: false, action: 'stop' },
  ])('$name', ({ have, root, apt, action }) => {
    const plan = planTools({ present: (t) => have.includes(t.command), isRoot: root, hasAptGet: apt }, SOME);
    expect(plan.action).toBe(action);
    if (plan.action === 'none') return;
    // one package per missing tool set, named once
    expect(plan.missing).toEqual(['qemu-img', 'qemu-nbd']);
    expect(plan.packages).toEqual(['qemu-utils']);
    if (plan.action === 'install') {
      expect(plan.commands).toEqual([
        ['apt-get', 'update', '-qq'],
        ['apt-get', 'install', '-y', '-qq', 'qemu-utils'],
      ]);
    } else {
      expect(plan.message).toContain('qemu-img, qemu-nbd');
      expect(plan.message).toContain('Debian packages qemu-utils');
      expect(plan.message).toContain('sudo apt-get update && sudo apt-get install -y qemu-utils');
      expect(plan.message.split('\n')).toHaveLength(1);
    }
  });

  it('names every package of the suite when nothing is installed', () => {
    const plan = planTools({ present: () => false, isRoot: false, hasAptGet: true });
    expect(plan.action).toBe('stop');
    if (plan.action !== 'stop') return;
    expect(plan.packages).toEqual([
      'qemu-utils',
      'nbdkit',
      'libnbd-bin',
      'python3-os-xenapi',
      'openssl',
      'tmux',
    ]);
    expect(plan.message).toContain(
      'run: sudo apt-get update && sudo apt-get install -y qemu-utils nbdkit libnbd-bin python3-os-xenapi openssl tmux',
    );
    expect(plan.message).toContain('/usr/bin/python3 with python3-os-xenapi');
  });
});

describe('systemProbe with an injected PATH', () => {
  fakeTool('qemu-img');
  fakeTool('broken-python', 1);
  writeFileSync(join(dir, 'not-executable'), '');

  it('finds executables on PATH only', () => {
    expect(onPath('qemu-img', `/nonexistent:${dir}`)).toBe(true);
    expect(onPath('qemu-nbd', dir)).toBe(false);
    expect(onPath('not-executable', dir)).toBe(false);
    expect(onPath(join(dir, 'qemu-img'), '')).toBe(true);
  });

  it('counts a tool whose check fails as missing', () => {
    const probe = systemProbe({ PATH: dir });
    expect(probe.present({ command: 'qemu-img', pkg: 'qemu-utils' })).toBe(true);
    expect(probe.present({ command: 'qemu-img', pkg: 'qemu-utils', check: ['-c', 'x'] })).toBe(true);
    expect(
      probe.present({ command: join(dir, 'broken-python'), pkg: 'python3-os-xenapi', check: ['-c', 'x'] }),
    ).toBe(false);
    expect(probe.hasAptGet).toBe(false);
    const plan = planTools(probe, TOOLS);
    expect(plan.action).toBe('stop');
    if (plan.action === 'stop') expect(plan.missing).not.toContain('qemu-img');
  });
});
