/**
 * Bandwidth of the simulated hosts: a cap per data connection (an HTTP export/import or an NBD
 * connection, like the 60-90 MB/s one XAPI TLS stream gets) and a cap on a host's total, shared by
 * every connection it serves. Rates are read fresh on every call, so they can change mid-transfer.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** A host's budget: each chunk books the next free slot of time at the host's rate. */
export class HostBudget {
  private free = 0;
  constructor(private readonly rate: () => number | undefined) {}
  /** The time (ms since epoch) by which `n` more bytes may have left the host. */
  book(n: number): number {
    const bps = this.rate();
    if (!bps) return 0;
    this.free = Math.max(this.free, Date.now()) + (n / bps) * 1000;
    return this.free;
  }
}

/** Paces one connection to its own cap and to its host's budget. */
export class Pacer {
  private readonly start = Date.now();
  private bytes = 0;
  constructor(
    private readonly rate: () => number | undefined,
    private readonly host?: HostBudget,
  ) {}
  async account(n: number): Promise<void> {
    this.bytes += n;
    const bps = this.rate();
    const own = bps ? this.start + (this.bytes / bps) * 1000 : 0;
    const due = Math.max(own, this.host?.book(n) ?? 0);
    const wait = due - Date.now();
    if (wait > 1) await sleep(wait);
  }
}
