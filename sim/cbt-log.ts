/**
 * Where each VDI's CBT log sits (SM's `<uuid>.cbtlog` files with their parent and child pointers,
 * `sm: drivers/VDI.py`). `VDI.enable_cbt` starts a chain; `VDI.snapshot` of a tracked VDI gives the
 * snapshot the VDI's log and the VDI a new one after it, so a chain runs from the oldest snapshot to
 * the live VDI; `VDI.clone` and `VDI.copy` pass no log (the new VDI starts without CBT), and
 * `VDI.disable_cbt` and destroy drop the VDI's log (deleting a snapshot relinks its neighbours, so
 * order within the chain is all that matters). `list_changed_blocks(from, to)` walks child pointers
 * from `from` and needs to reach `to`.
 */
import type { CbtLog, PoolState } from './state.js';

let counter = 0;
const fresh = (): CbtLog => ({ chain: ++counter, seq: ++counter });

/** The VDI's log; a VDI made with CBT on (a populated disk) gets a chain of its own. */
export function cbtLog(pool: PoolState, vdi: string): CbtLog | undefined {
  if (pool.db.get('VDI', vdi).cbt_enabled !== true) return undefined;
  let log = pool.cbtLogs.get(vdi);
  if (!log) {
    log = fresh();
    pool.cbtLogs.set(vdi, log);
  }
  return log;
}

export function startCbtLog(pool: PoolState, vdi: string): void {
  if (!pool.cbtLogs.has(vdi)) pool.cbtLogs.set(vdi, fresh());
}

export function dropCbtLog(pool: PoolState, vdi: string): void {
  pool.cbtLogs.delete(vdi);
}

/** After `snapshot` was made of `leaf`: the snapshot holds the leaf's log, the leaf one after it. */
export function snapshotCbtLog(pool: PoolState, leaf: string, snapshot: string): void {
  const log = cbtLog(pool, leaf);
  if (!log) return;
  pool.cbtLogs.set(snapshot, log);
  pool.cbtLogs.set(leaf, { chain: log.chain, seq: ++counter });
}

/** Why SM cannot list changed blocks from `from` to `to`, or undefined when it can. */
export function cbtUnrelated(pool: PoolState, from: string, to: string): string | undefined {
  if (from === to) return 'Source and target VDI are same';
  const a = cbtLog(pool, from);
  const b = cbtLog(pool, to);
  if (!a || !b || a.chain !== b.chain || a.seq >= b.seq) return 'Source and target VDI are unrelated';
  return undefined;
}
