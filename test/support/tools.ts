import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * The programs the test suite runs besides Node: independent oracles (qemu-img reads our VHD and
 * qcow2 bytes, nbdkit/qemu-nbd/libnbd are NBD peers nobody here wrote, os_xenapi is an XAPI client
 * nobody here wrote), certificates for the TLS tests, and tmux for the terminal test.
 */
export interface Tool {
  /** What a test spawns: a name looked up on PATH, or an absolute path. */
  command: string;
  /** The Debian package that provides it. */
  pkg: string;
  /** Extra arguments of a run that must exit 0 for the tool to count as present (a module import). */
  check?: string[];
}

export const TOOLS: readonly Tool[] = [
  { command: 'qemu-img', pkg: 'qemu-utils' },
  { command: 'qemu-io', pkg: 'qemu-utils' },
  { command: 'qemu-nbd', pkg: 'qemu-utils' },
  { command: 'nbdkit', pkg: 'nbdkit' },
  { command: 'nbdinfo', pkg: 'libnbd-bin' },
  { command: 'nbdcopy', pkg: 'libnbd-bin' },
  { command: '/usr/bin/python3', pkg: 'python3-os-xenapi', check: ['-c', 'import os_xenapi.client.XenAPI'] },
  { command: 'openssl', pkg: 'openssl' },
  { command: 'tmux', pkg: 'tmux' },
];

export interface Probe {
  /** Whether the tool can be run (found and, with `check`, the check exits 0). */
  present(tool: Tool): boolean;
  isRoot: boolean;
  hasAptGet: boolean;
}

export type ToolPlan =
  | { action: 'none' }
  | { action: 'install'; missing: string[]; packages: string[]; commands: string[][] }
  | { action: 'stop'; missing: string[]; packages: string[]; message: string };

function describeTool(tool: Tool): string {
  return tool.check ? `${tool.command} with ${tool.pkg}` : tool.command;
}

/** What to do about the tools: nothing, install their packages (root with apt-get), or stop. */
export function planTools(probe: Probe, tools: readonly Tool[] = TOOLS): ToolPlan {
  const missingTools = tools.filter((t) => !probe.present(t));
  if (missingTools.length === 0) return { action: 'none' };
  const missing = missingTools.map(describeTool);
  const packages = [...new Set(missingTools.map((t) => t.pkg))];
  if (probe.isRoot && probe.hasAptGet) {
    return {
      action: 'install',
      missing,
      packages,
      commands: [
        ['apt-get', 'update', '-qq'],
        ['apt-get', 'install', '-y', '-qq', ...packages],
      ],
    };
  }
  const command = `sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`;
  const how = probe.hasAptGet
    ? `run: ${command}`
    : `install the packages with your system's package manager (on Debian/Ubuntu: ${command})`;
  return {
    action: 'stop',
    missing,
    packages,
    message: `the tests need tools that are missing: ${missing.join(', ')} (Debian packages ${packages.join(', ')}); ${how}`,
  };
}

/** Whether `command` is an executable file, itself (absolute) or in one of the PATH directories. */
export function onPath(command: string, path: string): boolean {
  const candidates = isAbsolute(command)
    ? [command]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The probe of this machine. */
export function systemProbe(env: NodeJS.ProcessEnv = process.env): Probe {
  const path = env.PATH ?? '';
  return {
    present: (tool) =>
      onPath(tool.command, path) &&
      (!tool.check || spawnSync(tool.command, tool.check, { stdio: 'ignore', env }).status === 0),
    isRoot: process.getuid?.() === 0,
    hasAptGet: onPath('apt-get', path),
  };
}
