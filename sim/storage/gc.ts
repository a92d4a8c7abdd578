/**
 * SM's garbage collector, one per SR (cleanup.py): kicked by VDI deletions, it waits a quiet period,
 * then works in rounds until nothing is left: (a) forget every hidden base copy no VDI depends on;
 * (b) else coalesce one hidden VHD into its parent when it is that parent's only child; (c) else
 * leaf-coalesce one visible leaf into its parent when it is the parent's only child. Each coalesce
 * takes `coalesceMs`. A leaf coalesce goes through xapi as an internal VDI.snapshot, so for its
 * duration the leaf shows current operation `snapshot` and its SR `vdi_snapshot`: operations on
 * them wait (or, past the retry policy, fail with OTHER_OPERATION_IN_PROGRESS). The chain changes
 * (relinking children, forgetting the merged parent) are applied at the end of each step, after
 * checking the chain is still the one the step started from.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { destroyVdiData } from '../api/vdi.js';
import type { PoolState } from '../state.js';
import type { XRecord } from '../wire/values.js';
import { childrenOf, isBaseCopy, parentOf, setParent, srHasChains, VHD_PARENT } from './chain.js';

interface SrGc {
  timer?: NodeJS.Timeout;
  running?: Promise<void>;
  again: boolean;
}

export class GarbageCollector {
  private readonly srs = new Map<string, SrGc>();
  private closed = false;
  constructor(private readonly pool: PoolState) {}

  /** A deletion happened on `sr`: start a GC after the quiet period unless one is on its way. */
  kick(sr: string): void {
    if (this.closed || !srHasChains(this.pool, sr)) return;
    const s = this.srs.get(sr) ?? { again: false };
    this.srs.set(sr, s);
    if (s.running) {
      s.again = true;
      return;
    }
    if (s.timer) return;
    s.timer = setTimeout(() => {
      s.timer = undefined;
      void this.start(sr, s);
    }, this.pool.storage.settings.gcQuietMs);
    s.timer.unref();
  }

  /** A GC is waiting or working on `sr`. */
  pending(sr: string): boolean {
    const s = this.srs.get(sr);
    return !!(s && (s.timer || s.running));
  }

  /** Skip the quiet periods and run every SR's GC until no work is left (test hook). */
  async settle(): Promise<void> {
    for (const sr of this.pool.objectsOf('SR')) {
      if (!srHasChains(this.pool, sr)) continue;
      const s = this.srs.get(sr) ?? { again: false };
      this.srs.set(sr, s);
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
      await (s.running ?? this.start(sr, s));
      while (s.running) await s.running;
    }
  }

  close(): void {
    this.closed = true;
    for (const s of this.srs.values()) if (s.timer) clearTimeout(s.timer);
  }

  private start(sr: string, s: SrGc): Promise<void> {
    s.running = (async () => {
      // the body must not finish before `s.running` is assigned (its finally clears it)
      await Promise.resolve();
      let task: string | undefined;
      try {
        while (!this.closed && this.pool.db.has('SR', sr)) {
          this.collectGarbage(sr);
          const step = this.nextCoalesce(sr);
          if (!step) break;
          task ??= this.pool.createTask('Garbage Collection', `Garbage collection for SR ${this.srUuid(sr)}`);
          this.pool.db.get('task', task).other_config = { applies_to: sr };
          await step();
        }
      } catch {
        // a coalesce that lost a race with a client operation is retried on the next kick
      } finally {
        // xapi's task GC would remove the finished task later; the simulator does it at once
        if (task && this.pool.db.has('task', task)) this.pool.db.destroy('task', task);
        s.running = undefined;
        if (s.again) {
          s.again = false;
          this.kick(sr);
        }
      }
    })();
    return s.running;
  }

  private srUuid(sr: string): string {
    return this.pool.db.get('SR', sr).uuid as string;
  }

  private vdis(sr: string): string[] {
    return [...(this.pool.db.get('SR', sr).VDIs as string[])];
  }

  /** Hidden base copies with no VDI on top: forgotten (repeatedly, as parents become free). */
  private collectGarbage(sr: string): void {
    for (let found = true; found; ) {
      found = false;
      for (const v of this.vdis(sr)) {
        const rec = this.pool.db.find('VDI', v);
        if (rec && isBaseCopy(rec) && childrenOf(this.pool, v).length === 0) {
          destroyVdiData(this.pool, v);
          found = true;
        }
      }
    }
  }

  private coalesceAllowed(sr: string): boolean {
    const oc = this.pool.db.get('SR', sr).other_config as XRecord;
    return oc.coalesce !== 'false';
  }

  /** The next coalesce step on `sr` (non-leaf first), or undefined when there is none. */
  private nextCoalesce(sr: string): (() => Promise<void>) | undefined {
    if (!this.coalesceAllowed(sr)) return undefined;
    const pool = this.pool;
    const onlyChild = (parent: string, child: string): boolean => {
      const c = childrenOf(pool, parent);
      return c.length === 1 && c[0] === child;
    };
    const ms = pool.storage.settings.coalesceMs;
    for (const x of this.vdis(sr)) {
      const rec = pool.db.find('VDI', x);
      const parent = rec && isBaseCopy(rec) ? parentOf(pool, x) : undefined;
      if (!parent || !onlyChild(parent, x) || childrenOf(pool, x).length === 0) continue;
      return async () => {
        await sleep(ms);
        if (!pool.db.has('VDI', x) || parentOf(pool, x) !== parent || !onlyChild(parent, x)) return;
        const parentUuid = pool.db.get('VDI', parent).uuid as string;
        for (const child of childrenOf(pool, x)) setParent(pool, child, parentUuid);
        destroyVdiData(pool, x);
      };
    }
    const leafOk = (pool.db.get('SR', sr).other_config as XRecord)['leaf-coalesce'] !== 'false';
    for (const leaf of leafOk ? this.vdis(sr) : []) {
      const rec = pool.db.find('VDI', leaf);
      if (!rec || isBaseCopy(rec) || rec.type === 'cbt_metadata') continue;
      if ((rec.other_config as XRecord)['leaf-coalesce'] === 'false') continue;
      const parent = parentOf(pool, leaf);
      if (!parent || !onlyChild(parent, leaf) || childrenOf(pool, leaf).length > 0) continue;
      return () =>
        pool.storage.ops.run(
          [
            { cls: 'SR', ref: sr, op: 'vdi_snapshot' },
            { cls: 'VDI', ref: leaf, op: 'snapshot' },
          ],
          undefined,
          async () => {
            await sleep(ms);
            if (!pool.db.has('VDI', leaf) || parentOf(pool, leaf) !== parent || !onlyChild(parent, leaf))
              return;
            // the parent is renamed to the leaf's uuid and the old parent record forgotten: the leaf
            // keeps its uuid and ref and takes over the grandparent as its parent
            const grand = (pool.db.get('VDI', parent).sm_config as XRecord)[VHD_PARENT];
            setParent(pool, leaf, typeof grand === 'string' ? grand : undefined);
            destroyVdiData(pool, parent);
          },
        );
    }
    return undefined;
  }
}
