import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Who holds a local lease: recorded with it, so a later process can tell whether it is alive. */
export interface LeaseHolder {
  host: string;
  pid: number;
  /** The process's start time (Linux `/proc/<pid>/stat` starttime, clock ticks since boot); '' where
   *  unknown. A pid reused by another process has another start time. */
  pidStart: string;
  /** ISO time the holder took the lease. */
  since: string;
}

/** Field 22 of /proc/<pid>/stat; the command name (field 2) may hold spaces and parentheses. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

export function currentHolder(since: string): LeaseHolder {
  return { host: hostname(), pid: process.pid, pidStart: processStartTime(process.pid) ?? '', since };
}

/**
 * 'dead' only when that is certain: the holder ran on this machine and its pid is gone or now
 * belongs to a process started at another time. A holder on another host is 'unknown'.
 */
export function holderState(h: LeaseHolder): 'alive' | 'dead' | 'unknown' {
  if (h.host !== hostname()) return 'unknown';
  if (!pidExists(h.pid)) return 'dead';
  const start = processStartTime(h.pid);
  if (h.pidStart && start !== undefined && start !== h.pidStart) return 'dead';
  return 'alive';
}
