/**
 * What a booted guest does, as xapi sees it: after a delay its guest agent reports (a
 * VM_guest_metrics record appears, linked from VM.guest_metrics, with os_version and the PV
 * drivers' version), and it may write keys under `vm-data/`, which xenopsd copies back into
 * VM.xenstore_data (only the `vm-data` and `FIST` prefixes are synced; a guest cannot write other
 * keys there). A guest can also never report (no tools, or a boot that hangs) or crash, after which
 * the VM is Halted (actions_after_crash = destroy) or restarted in a new domain (restart).
 * This module holds the rules and timers (no pool state); api/guest-boot.ts acts them out.
 */

export interface GuestBehaviour {
  /** Which VMs: those whose name_label contains this text ('' = every VM). */
  nameIncludes?: string;
  /** 'tools' (default): the agent reports; 'silent': it never does; 'crash': the domain crashes. */
  outcome?: 'tools' | 'silent' | 'crash';
  /** After VM.start; default 200 ms. */
  delayMs?: number;
  /** Keys the guest writes once booted; only `vm-data/...` keys reach VM.xenstore_data. */
  xenstore?: Record<string, string>;
}

export class Guests {
  /** Later rules win over earlier ones. */
  rules: GuestBehaviour[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  behaviourOf(name: string): GuestBehaviour {
    const hits = this.rules.filter((r) => name.includes(r.nameIncludes ?? ''));
    return hits[hits.length - 1] ?? {};
  }

  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
