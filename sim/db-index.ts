/**
 * Refs of one class grouped by a key derived from each record (a VDI's SR, its VHD parent), with the
 * sum of a number derived from each member, kept current through the database's observer: looking
 * up a group costs its size, not the pool's.
 */
import type { Db } from './db.js';
import type { ClassName } from './schema.js';
import type { XRecord } from './wire/values.js';

interface Group {
  refs: Set<string>;
  sum: number;
}

export class GroupIndex {
  private readonly member = new Map<string, { key: string; value: number }>();
  private readonly groups = new Map<string, Group>();

  constructor(
    db: Db,
    cls: ClassName,
    private readonly keyOf: (rec: XRecord) => string | undefined,
    private readonly amountOf: (rec: XRecord) => number = () => 0,
  ) {
    for (const [ref, rec] of db.all(cls)) this.update(ref, rec);
    db.observe(cls, (ref, rec) => this.update(ref, rec));
  }

  /** The refs whose key is `key`, in the order they joined the group. */
  refs(key: string): string[] {
    return [...(this.groups.get(key)?.refs ?? [])];
  }

  /** The sum of the group's values (0 for an empty group). */
  sum(key: string): number {
    return this.groups.get(key)?.sum ?? 0;
  }

  private update(ref: string, rec: XRecord | undefined): void {
    const key = rec ? this.keyOf(rec) : undefined;
    const value = rec && key !== undefined ? this.amountOf(rec) : 0;
    const old = this.member.get(ref);
    if (old && old.key === key) {
      this.groups.get(key)!.sum += value - old.value;
      old.value = value;
      return;
    }
    if (old) {
      const g = this.groups.get(old.key)!;
      g.refs.delete(ref);
      g.sum -= old.value;
      if (g.refs.size === 0) this.groups.delete(old.key);
      this.member.delete(ref);
    }
    if (key === undefined) return;
    let g = this.groups.get(key);
    if (!g) {
      g = { refs: new Set(), sum: 0 };
      this.groups.set(key, g);
    }
    g.refs.add(ref);
    g.sum += value;
    this.member.set(ref, { key, value });
  }
}
