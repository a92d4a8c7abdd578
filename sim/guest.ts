/**
 * What a booted guest does, as xapi sees it: after a delay its guest agent reports (a
 * VM_guest_metrics record appears, linked from VM.guest_metrics, with os_version and the PV
 * drivers' version), and it may write keys under `vm-data/`, which xenopsd copies back into
 * VM.xenstore_data (only the `vm-data` and `FIST` prefixes are synced; a guest cannot write other
 * keys there). A guest can also never report (no tools, or a boot that hangs) or crash, after which
 * the VM is Halted (actions_after_crash = destroy) or restarted in a new domain (restart).
 */
import { randomUUID } from 'node:crypto';
import type { PoolState } from './state.js';
import { NULL_REF, type XRecord } from './wire/values.js';

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

const SYNCED_PREFIXES = ['vm-data/', 'FIST/'];

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

/** Removes the guest metrics of a VM (xapi does when the VM halts). */
export function dropGuestMetrics(pool: PoolState, vm: string): void {
  const rec = pool.db.find('VM', vm);
  if (!rec) return;
  const gm = rec.guest_metrics as string;
  if (gm !== NULL_REF && pool.db.has('VM_guest_metrics', gm)) pool.db.destroy('VM_guest_metrics', gm);
  pool.db.set('VM', vm, 'guest_metrics', NULL_REF);
}

function report(pool: PoolState, vm: string, b: GuestBehaviour): void {
  const gm = pool.db.create('VM_guest_metrics', {
    uuid: randomUUID(),
    os_version: { name: 'Debian GNU/Linux 12 (bookworm)', distro: 'debian', major: '12', minor: '5' },
    PV_drivers_version: { major: '9', minor: '4', micro: '0', build: '1' },
    PV_drivers_up_to_date: true,
    PV_drivers_detected: true,
    networks: {},
    other: { 'feature-shutdown': '1', has_vendor_device: '0' },
    last_updated: new Date(),
    live: true,
  });
  pool.db.set('VM', vm, 'guest_metrics', gm);
  const written = Object.entries(b.xenstore ?? {}).filter(([k]) =>
    SYNCED_PREFIXES.some((p) => k.startsWith(p)),
  );
  if (written.length > 0) {
    const xs = { ...(pool.db.get('VM', vm).xenstore_data as XRecord) };
    for (const [k, v] of written) xs[k] = v;
    pool.db.set('VM', vm, 'xenstore_data', xs);
  }
}

/** Called by VM.start once the domain exists: schedules what its guest does. */
export function bootGuest(pool: PoolState, vm: string): void {
  const rec = pool.db.get('VM', vm);
  const b = pool.guests.behaviourOf(String(rec.name_label));
  const domid = rec.domid;
  const outcome = b.outcome ?? 'tools';
  if (outcome === 'silent') return;
  pool.guests.later(b.delayMs ?? 200, () => {
    const now = pool.db.find('VM', vm);
    // The VM was shut down (or restarted) meanwhile: that guest no longer exists.
    if (now?.power_state !== 'Running' || now.domid !== domid) return;
    if (outcome === 'tools') {
      report(pool, vm, b);
      return;
    }
    dropGuestMetrics(pool, vm);
    if (now.actions_after_crash === 'restart') {
      pool.db.set('VM', vm, 'domid', (domid as number) + 1);
      bootGuest(pool, vm);
      return;
    }
    pool.db.set('VM', vm, 'power_state', 'Halted');
    pool.db.set('VM', vm, 'resident_on', NULL_REF);
    pool.db.set('VM', vm, 'domid', -1);
    for (const v of now.VBDs as string[]) pool.db.set('VBD', v, 'currently_attached', false);
    for (const v of now.VIFs as string[]) pool.db.set('VIF', v, 'currently_attached', false);
  });
}
