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
import { retrying } from '../retry/index.js';
import type { Xapi } from '../xapi/index.js';
import { XcrTransientError } from './errors.js';

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

/** xapi's answers for a VDI that no longer exists: looked up by uuid, or read by ref. */
const VANISHED = new Set(['UUID_INVALID', 'HANDLE_INVALID']);
const CHAIN_CHANGING = 'VDI_CHAIN_CHANGING';

const codeOf = (e: unknown): unknown => (e as { code?: unknown } | undefined)?.code;

/**
 * VHDs from `vdi` up to its root, counting `vdi` (1 = no parent). SR types without chains give 1.
 * The walk is one call per level, so the GC may coalesce a parent away between two of them: its
 * children then hang from the grandparent, and the walk starts again from `vdi` (the rest of the
 * chain still counts). Any other failure propagates: a depth is never guessed, since a short one
 * would let a clone grow the chain past the limit.
 */
export async function chainDepth(xapi: Xapi, vdi: string): Promise<number> {
  return retrying(
    async () => {
      const depth = await walkChain(xapi, vdi);
      if (depth !== undefined) return depth;
      throw new XcrTransientError(
        CHAIN_CHANGING,
        `a parent in the VHD chain of ${vdi} vanished during each walk (coalescing, or a parent xapi does not know)`,
      );
    },
    { attempts: 6, baseMs: 20, retryable: (e) => codeOf(e) === CHAIN_CHANGING },
  );
}

/** One walk up the chain; undefined when a VDI above `vdi` vanished meanwhile. */
async function walkChain(xapi: Xapi, vdi: string): Promise<number | undefined> {
  let depth = 1;
  let ref = vdi;
  // bounded: a chain can't legitimately exceed SM's limit; a cycle in broken metadata must not hang us
  while (depth <= SM_CHAIN_LIMIT + 2) {
    let parent: string | undefined;
    try {
      parent = (await xapi.call<Record<string, string>>('VDI.get_sm_config', ref))[VHD_PARENT];
      if (!parent) return depth;
      ref = await xapi.getByUuid('VDI', parent);
    } catch (e) {
      // `vdi` itself gone is the caller's problem; a parent gone is a coalesce
      const readingLeaf = depth === 1 && parent === undefined;
      if (!readingLeaf && VANISHED.has(codeOf(e) as string)) return undefined;
      throw e;
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

const isChainTooLong = (e: unknown): boolean => codeOf(e) === CHAIN_TOO_LONG;

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
