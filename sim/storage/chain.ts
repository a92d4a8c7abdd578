/**
 * VHD parent chains as SM keeps them on file and LVM SRs. A snapshot or clone of VDI S turns S's
 * current VHD into a hidden, read-only "base copy" (a new uuid, `managed=false` in xapi) and gives
 * S and the new VDI each an empty leaf on top of it: `sm_config['vhd-parent']` names the parent's
 * uuid. The data itself stays shared copy-on-write in the simulator (sim/disk.ts): the chain is
 * metadata, plus what the garbage collector does with it (gc.ts).
 */
import { randomUUID } from 'node:crypto';
import { GroupIndex } from '../db-index.js';
import { BLOCK_SIZE } from '../disk.js';
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import type { XRecord } from '../wire/values.js';
import { hasChains, isThick } from './settings.js';

export const VHD_PARENT = 'vhd-parent';

/** sm_config keys SM manages itself, never copied onto a new leaf. */
const SM_OWN = new Set([VHD_PARENT, 'paused', 'relinking', 'activating', 'vhd-blocks']);

export function srHasChains(pool: PoolState, sr: string): boolean {
  return hasChains(pool.db.find('SR', sr)?.type);
}

export function parentOf(pool: PoolState, vdi: string): string | undefined {
  const uuid = (pool.db.find('VDI', vdi)?.sm_config as XRecord | undefined)?.[VHD_PARENT];
  if (typeof uuid !== 'string') return undefined;
  try {
    return pool.db.byUuid('VDI', uuid);
  } catch {
    return undefined;
  }
}

/** VHDs from `vdi` to the root, counting `vdi` itself (what `vhd-util query -d` reports). */
export function chainDepth(pool: PoolState, vdi: string): number {
  let n = 1;
  for (let p = parentOf(pool, vdi); p; p = parentOf(pool, p)) n++;
  return n;
}

/** Each pool's VDIs by the uuid their `vhd-parent` names (the GC asks for children of every VDI). */
const byParent = new WeakMap<PoolState, GroupIndex>();

function vhdChildren(pool: PoolState): GroupIndex {
  let index = byParent.get(pool);
  if (!index) {
    index = new GroupIndex(pool.db, 'VDI', (r) => {
      const uuid = (r.sm_config as XRecord | undefined)?.[VHD_PARENT];
      return typeof uuid === 'string' ? uuid : undefined;
    });
    byParent.set(pool, index);
  }
  return index;
}

/** The VDIs of the SR whose parent is `vdi`. */
export function childrenOf(pool: PoolState, vdi: string): string[] {
  const rec = pool.db.find('VDI', vdi);
  if (!rec) return [];
  return vhdChildren(pool)
    .refs(rec.uuid as string)
    .filter((v) => pool.db.find('VDI', v)?.SR === rec.SR);
}

export const isBaseCopy = (rec: XRecord): boolean => rec.managed === false;

export function setParent(pool: PoolState, vdi: string, parentUuid: string | undefined): void {
  const rec = pool.db.get('VDI', vdi);
  const sm = { ...(rec.sm_config as XRecord) };
  if (parentUuid) sm[VHD_PARENT] = parentUuid;
  else delete sm[VHD_PARENT];
  pool.db.set('VDI', vdi, 'sm_config', sm);
}

/** SM's check before a snapshot or clone: the leaf's chain must be shorter than MAX_CHAIN_SIZE. */
export function assertChainRoom(pool: PoolState, vdi: string): void {
  if (!srHasChains(pool, pool.db.get('VDI', vdi).SR as string)) return;
  if (pool.db.get('VDI', vdi).managed === false)
    throw new XapiError('SR_BACKEND_FAILURE_81', ['', 'Failed to clone VDI [opterr=hidden VDI]', '']);
  if (chainDepth(pool, vdi) >= pool.storage.settings.chainLimit)
    throw new XapiError('SR_BACKEND_FAILURE_109', ['', 'The snapshot chain is too long', '']);
}

/** The sm_config a new leaf gets: the source's, minus SM's own keys, on top of `baseUuid`. */
export function leafSmConfig(src: XRecord, baseUuid: string | undefined): XRecord {
  const out: XRecord = {};
  for (const [k, v] of Object.entries(src.sm_config as XRecord)) if (!SM_OWN.has(k)) out[k] = v;
  if (baseUuid) out[VHD_PARENT] = baseUuid;
  return out;
}

/**
 * The snapshot/clone step on a VHD SR: `vdi`'s current VHD becomes a base copy (its blocks shared,
 * costing nothing more on file SRs and their allocated size again on thick LVM), and `vdi` is relinked
 * onto it. Returns the base copy's uuid, or undefined on SR types without chains.
 */
export function insertBaseCopy(pool: PoolState, vdi: string, extraCharge = 0): string | undefined {
  const src = pool.db.get('VDI', vdi);
  const sr = src.SR as string;
  if (!srHasChains(pool, sr)) return undefined;
  const d = pool.disk(vdi);
  const thick = isThick(pool.db.get('SR', sr).type);
  const charge = thick ? d.blocks.size * BLOCK_SIZE + extraCharge : 0;
  d.store.charge(charge);
  const uuid = randomUUID();
  const grandparent = (src.sm_config as XRecord)[VHD_PARENT];
  const ref = pool.db.create('VDI', {
    uuid,
    name_label: 'base copy',
    name_description: '',
    SR: sr,
    type: src.type ?? 'user',
    virtual_size: d.size,
    physical_utilisation: d.blocks.size * BLOCK_SIZE,
    read_only: true,
    managed: false,
    sharable: false,
    location: uuid,
    sm_config: typeof grandparent === 'string' ? { [VHD_PARENT]: grandparent } : {},
    other_config: {},
    allowed_operations: [],
  });
  pool.disks.set(ref, d.share());
  if (charge) pool.storage.charges.set(ref, charge);
  setParent(pool, vdi, uuid);
  pool.syncSr(sr);
  return uuid;
}

/** Give back what a VDI's thick-provisioning charge held (it is destroyed or coalesced away). */
export function releaseCharge(pool: PoolState, vdi: string): void {
  const c = pool.storage.charges.get(vdi);
  if (!c) return;
  pool.storage.charges.delete(vdi);
  pool.disks.get(vdi)?.store.uncharge(c);
}
