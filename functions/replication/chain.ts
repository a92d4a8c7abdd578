/**
 * Destination VHD chains. On file and LVM SRs every VDI.clone puts a hidden base copy under the
 * recovery point's disk (sm_config['vhd-parent'] names the parent), so a delta layout that clones
 * the previous recovery point each run grows the chain by one per run until retention deletes old
 * points and the SR's garbage collector coalesces them — minutes later, or never if it falls behind.
 * SM refuses to snapshot or clone a leaf whose chain has reached 30 (SR_BACKEND_FAILURE_109). xcr
 * keeps its chains below `maxChainDepth`: at the limit it waits (bounded) for a coalesce to shorten
 * the chain, and otherwise starts a new chain with VDI.copy — a flat local copy on the destination,
 * after which the run still sends only the changed blocks.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Xapi } from '../xapi/index.js';

export const VHD_PARENT = 'vhd-parent';
/** SM's MAX_CHAIN_SIZE: deeper chains make VDI.snapshot / VDI.clone fail with 109. */
export const SM_CHAIN_LIMIT = 30;
const CHAIN_TOO_LONG = 'SR_BACKEND_FAILURE_109';

export interface ChainPolicy {
  /** Clone only from a chain shorter than this (counting the leaf); the clone is then at most this deep. */
  maxDepth: number;
  /** How long to wait for the garbage collector to shorten a chain at the limit. */
  waitMs: number;
  pollMs: number;
}

/** VHDs from `vdi` up to its root, counting `vdi` (1 = no parent). SR types without chains give 1. */
export async function chainDepth(xapi: Xapi, vdi: string): Promise<number> {
  let depth = 1;
  let ref = vdi;
  // bounded: a chain can't legitimately exceed SM's limit; a cycle in broken metadata must not hang us
  while (depth <= SM_CHAIN_LIMIT + 2) {
    const sm = await xapi.call<Record<string, string>>('VDI.get_sm_config', ref);
    const parent = sm[VHD_PARENT];
    if (!parent) return depth;
    try {
      ref = await xapi.getByUuid('VDI', parent);
    } catch {
      return depth + 1; // the parent is being coalesced away right now; it still counts
    }
    depth++;
  }
  return depth;
}

export interface DeltaTarget {
  ref: string;
  how: 'clone' | 'copy';
  /** Depth of the recovery point's chain when the clone was decided. */
  sourceDepth: number;
  warning?: string;
}

const isChainTooLong = (e: unknown): boolean =>
  (e as { code?: unknown } | undefined)?.code === CHAIN_TOO_LONG;

/**
 * A writable copy of the recovery-point disk `rpVdi` on SR `srRef`: VDI.clone when its chain has room
 * (after waiting up to `policy.waitMs` for the GC at the limit), else VDI.copy with a warning. A 109
 * from the clone (the SR's limit is lower than ours, or the chain grew meanwhile) also means copy.
 */
export async function cloneWithinChainLimit(
  xapi: Xapi,
  rpVdi: string,
  srRef: string,
  policy: ChainPolicy,
): Promise<DeltaTarget> {
  const start = Date.now();
  let depth = await chainDepth(xapi, rpVdi);
  while (depth >= policy.maxDepth && Date.now() - start < policy.waitMs) {
    await sleep(policy.pollMs);
    depth = await chainDepth(xapi, rpVdi);
  }
  const copy = async (why: string): Promise<DeltaTarget> => ({
    ref: await xapi.callAsync<string>('VDI.copy', rpVdi, srRef),
    how: 'copy',
    sourceDepth: depth,
    warning: `${why}: the recovery point's disk was copied in full on the destination (a new chain)`,
  });
  if (depth >= policy.maxDepth) {
    const waited = Math.round((Date.now() - start) / 1000);
    return copy(
      `VHD chain of ${depth} at the limit of ${policy.maxDepth} after waiting ${waited} s for coalescing`,
    );
  }
  try {
    return { ref: await xapi.callAsync<string>('VDI.clone', rpVdi), how: 'clone', sourceDepth: depth };
  } catch (e) {
    if (!isChainTooLong(e)) throw e;
    return copy(`VDI.clone refused: the snapshot chain is too long (${CHAIN_TOO_LONG}, depth ${depth})`);
  }
}
