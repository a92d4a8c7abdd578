/**
 * The pool database: live objects per class, uuid index, reverse relation sets, and the
 * generation counter that event.from reads. Every mutation goes through this class so events
 * and relation sets stay consistent. Nothing here costs more than the records it touches: a pool
 * of thousands of VMs is set up, changed and watched (event.from) without walking every object.
 */
import { randomUUID } from 'node:crypto';
import { XapiError } from './errors.js';
import { type ClassName, defaults, RELATIONS, SCHEMA } from './schema.js';
import { cloneValue, NULL_REF, type XRecord, type XValue } from './wire/values.js';

export interface ChangeEntry {
  cls: ClassName;
  ref: string;
  gen: number;
  /** generation at which the object was created (for add vs mod) */
  created: number;
  deleted: boolean;
}

export const newRef = (): string => `OpaqueRef:${randomUUID()}`;

/** Called after every change of an object of the observed class; `rec` is undefined once it is gone. */
export type Observer = (ref: string, rec: XRecord | undefined) => void;

export class Db {
  private readonly tables = new Map<ClassName, Map<string, XRecord>>();
  private readonly uuids = new Map<string, string>();
  /** last change per object (live or deleted), for event.from */
  readonly changes = new Map<string, ChangeEntry>();
  /** every change in generation order; an entry is stale once `changes` holds a newer one for its ref */
  private log: ChangeEntry[] = [];
  gen = 0;
  private waiters: (() => void)[] = [];
  private readonly observers = new Map<ClassName, Observer[]>();

  constructor() {
    for (const c of Object.keys(SCHEMA) as ClassName[]) this.tables.set(c, new Map());
  }

  table(cls: ClassName): Map<string, XRecord> {
    return this.tables.get(cls)!;
  }

  has(cls: ClassName, ref: string): boolean {
    return this.table(cls).has(ref);
  }

  /** The live record (mutable: callers must call touch() after changing it). */
  get(cls: ClassName, ref: string): XRecord {
    const rec = this.table(cls).get(ref);
    if (!rec) throw new XapiError('HANDLE_INVALID', [cls, ref]);
    return rec;
  }

  find(cls: ClassName, ref: string): XRecord | undefined {
    return this.table(cls).get(ref);
  }

  byUuid(cls: ClassName, uuid: string): string {
    const ref = this.uuids.get(uuid);
    if (!ref || !this.table(cls).has(ref)) throw new XapiError('UUID_INVALID', [cls, uuid]);
    return ref;
  }

  /** A ref or a uuid (HTTP handlers accept both). */
  resolve(cls: ClassName, refOrUuid: string): string {
    if (this.table(cls).has(refOrUuid)) return refOrUuid;
    const ref = this.uuids.get(refOrUuid);
    if (ref && this.table(cls).has(ref)) return ref;
    throw new XapiError('HANDLE_INVALID', [cls, refOrUuid]);
  }

  /** Keep something derived from a class's records (an index, a sum) in step with every change. */
  observe(cls: ClassName, fn: Observer): void {
    this.observers.set(cls, [...(this.observers.get(cls) ?? []), fn]);
  }

  create(cls: ClassName, fields: XRecord, given?: string): string {
    const ref = given ?? newRef();
    const rec: XRecord = { ...defaults(cls), ...fields };
    if (!rec.uuid) rec.uuid = randomUUID();
    // relation sets grow in place (link), so the record owns its arrays
    for (const [, , parent, set] of RELATIONS)
      if (parent === cls) rec[set] = [...((rec[set] as string[]) ?? [])];
    this.table(cls).set(ref, rec);
    this.uuids.set(rec.uuid as string, ref);
    this.bump(cls, ref, false, true);
    for (const [child, field, parent, set] of RELATIONS) {
      if (child === cls) this.link(parent, rec[field] as string, set, ref, true, given === undefined);
    }
    // children created before their parent record (e.g. restored objects) are picked up too; a
    // freshly generated ref cannot be named by any record yet, so only a given one is looked for
    for (const [child, field, parent, set] of RELATIONS) {
      if (parent !== cls || given === undefined) continue;
      const refs: string[] = [];
      for (const [cref, crec] of this.table(child)) if (crec[field] === ref) refs.push(cref);
      if (refs.length) rec[set] = refs;
    }
    return ref;
  }

  destroy(cls: ClassName, ref: string): void {
    const rec = this.get(cls, ref);
    for (const [child, field, parent, set] of RELATIONS) {
      if (child === cls) this.link(parent, rec[field] as string, set, ref, false);
    }
    this.table(cls).delete(ref);
    this.uuids.delete(rec.uuid as string);
    this.bump(cls, ref, true, false);
  }

  /** Set one field, keeping relation sets in step. */
  set(cls: ClassName, ref: string, field: string, value: XValue): void {
    const rec = this.get(cls, ref);
    for (const [child, f, parent, set] of RELATIONS) {
      if (child === cls && f === field && rec[field] !== value) {
        this.link(parent, rec[field] as string, set, ref, false);
        this.link(parent, value as string, set, ref, true);
      }
    }
    rec[field] = value;
    this.touch(cls, ref);
  }

  touch(cls: ClassName, ref: string): void {
    if (this.table(cls).has(ref)) this.bump(cls, ref, false, false);
  }

  /**
   * Add `ref` to (or remove it from) the parent's relation set. An addition appends in place (a
   * copy per addition made an SR of 10,000 VDIs cost 10,000² copies), so a loop over a live set
   * sees members added during it; a removal makes a new array, so such a loop never skips one.
   * `fresh`: the ref was just generated, so it cannot be a member already.
   */
  private link(parent: ClassName, pref: string, set: string, ref: string, add: boolean, fresh = false): void {
    if (!pref || pref === NULL_REF) return;
    const prec = this.table(parent).get(pref);
    if (!prec) return;
    const cur = prec[set] as string[];
    if (add && (fresh || !cur.includes(ref))) cur.push(ref);
    else if (!add) prec[set] = cur.filter((x) => x !== ref);
    this.bump(parent, pref, false, false);
  }

  private bump(cls: ClassName, ref: string, deleted: boolean, created: boolean): void {
    this.gen++;
    const prev = this.changes.get(ref);
    const entry: ChangeEntry = {
      cls,
      ref,
      gen: this.gen,
      created: created ? this.gen : (prev?.created ?? 0),
      deleted,
    };
    this.changes.set(ref, entry);
    this.log.push(entry);
    // drop stale entries once they outnumber the live ones (amortised O(1) per change)
    if (this.log.length > 2 * this.changes.size + 1024)
      this.log = this.log.filter((e) => this.changes.get(e.ref) === e);
    const obs = this.observers.get(cls);
    if (obs) {
      const rec = deleted ? undefined : this.table(cls).get(ref);
      for (const f of obs) f(ref, rec);
    }
    const w = this.waiters;
    if (w.length) {
      this.waiters = [];
      for (const f of w) f();
    }
  }

  /** The last change of every object changed after generation `since`, oldest first. */
  *changedSince(since: number): Generator<ChangeEntry> {
    const log = this.log;
    let lo = 0;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log[mid]!.gen <= since) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < log.length; i++) {
      const e = log[i]!;
      if (this.changes.get(e.ref) === e) yield e;
    }
  }

  /** Resolves at the next change (or never; callers race it with a timer). */
  nextChange(): Promise<void> {
    return new Promise((res) => this.waiters.push(res));
  }

  record(cls: ClassName, ref: string): XRecord {
    return cloneValue(this.get(cls, ref));
  }

  all(cls: ClassName): [string, XRecord][] {
    return [...this.table(cls)];
  }
}
