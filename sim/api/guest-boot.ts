/** A booted guest acting out its GuestBehaviour on the pool (see sim/guest.ts). */
import { randomUUID } from 'node:crypto';
import type { GuestBehaviour } from '../guest.js';
import type { PoolState } from '../state.js';
import { NULL_REF, type XRecord } from '../wire/values.js';

/** xenopsd copies only these xenstore prefixes back into VM.xenstore_data. */
const SYNCED_PREFIXES = ['vm-data/', 'FIST/'];

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
