/** Fault injection, stream cuts, throttling and latency for one pool. */
import { XapiError } from './errors.js';
import { HostBudget } from './pace.js';

interface MethodFault {
  method: string;
  first: number;
  last: number;
  seen: number;
  error: string[];
}
/** An HTTP transfer, or an NBD connection (counted at its first read request). */
export type StreamPath = 'export_raw_vdi' | 'import_raw_vdi' | 'nbd';
interface StreamCut {
  path: StreamPath;
  afterBytes: number;
  first: number;
  last: number;
  seen: number;
}

export class Faults {
  private methodFaults: MethodFault[] = [];
  private cuts: StreamCut[] = [];
  /** Cap of each data connection (HTTP export/import, NBD), bytes/s; undefined = unlimited. */
  bytesPerSecond: number | undefined;
  /** Cap of each host's total over all its data connections, bytes/s; undefined = unlimited. */
  hostBytesPerSecond: number | undefined;
  latencyMs = 0;
  private readonly hosts = new Map<number, HostBudget>();

  /** The shared budget of one host's data connections. */
  host(hostIndex: number): HostBudget {
    let b = this.hosts.get(hostIndex);
    if (!b) {
      b = new HostBudget(() => this.hostBytesPerSecond);
      this.hosts.set(hostIndex, b);
    }
    return b;
  }

  /** Whether data paths are paced at all (then they send small pieces, so pacing is smooth). */
  paced(): boolean {
    return this.bytesPerSecond !== undefined || this.hostBytesPerSecond !== undefined;
  }

  inject(f: { method: string; nth?: number; count?: number; error: string[] }): void {
    if (!Array.isArray(f.error) || f.error.length === 0)
      throw new XapiError('INTERNAL_ERROR', ['empty error']);
    const nth = f.nth ?? 1;
    this.methodFaults.push({
      method: f.method.replace(/^Async\./, ''),
      first: nth,
      last: nth + (f.count ?? 1) - 1,
      seen: 0,
      error: f.error.map(String),
    });
  }

  /** Count a call of `method` (without Async.) and return the error it must fail with, if any. */
  check(method: string): XapiError | undefined {
    let hit: XapiError | undefined;
    for (const f of this.methodFaults) {
      if (f.method !== method) continue;
      f.seen++;
      if (!hit && f.seen >= f.first && f.seen <= f.last) {
        const [code = 'INTERNAL_ERROR', ...params] = f.error;
        hit = new XapiError(code, params);
      }
    }
    return hit;
  }

  cutStream(f: { path: StreamPath; afterBytes: number; nth?: number; count?: number }): void {
    const nth = f.nth ?? 1;
    this.cuts.push({
      path: f.path,
      afterBytes: f.afterBytes,
      first: nth,
      last: nth + (f.count ?? 1) - 1,
      seen: 0,
    });
  }

  /** Count a transfer on `path` and return the byte count after which it must be cut, if any. */
  cutFor(path: StreamPath): number | undefined {
    let cut: number | undefined;
    for (const c of this.cuts) {
      if (c.path !== path) continue;
      c.seen++;
      if (cut === undefined && c.seen >= c.first && c.seen <= c.last) cut = c.afterBytes;
    }
    return cut;
  }

  clear(): void {
    this.methodFaults = [];
    this.cuts = [];
  }
}
