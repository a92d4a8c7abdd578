/**
 * current_operations and the conflicts between them, as xapi checks them on admission: an
 * operation marks its objects (the SR for VDI create/destroy/snapshot/clone, the VDI for anything
 * done to it) for as long as it runs. A conflicting operation is not refused at once: xapi's
 * Helpers.retry waits (woken when the blocking operation ends) and only after the policy's time is
 * up raises OTHER_OPERATION_IN_PROGRESS [class, ref, op, task]. So clients see a slow call.
 */
import { randomUUID } from 'node:crypto';
import { XapiError } from '../errors.js';
import type { ClassName } from '../schema.js';
import type { XRecord } from '../wire/values.js';

export interface Mark {
  cls: 'SR' | 'VDI';
  ref: string;
  op: string;
}

interface Db {
  find(cls: ClassName, ref: string): XRecord | undefined;
  touch(cls: ClassName, ref: string): void;
}

/** The operation already running on `rec` that `op` conflicts with, if any. */
function blocking(m: Mark, rec: XRecord): [string, string] | undefined {
  for (const [task, op] of Object.entries((rec.current_operations ?? {}) as Record<string, string>)) {
    // SR: only plug may overlap; VDI: a running copy lets others in except snapshot (refused below)
    if (m.cls === 'VDI' && op === 'copy' && m.op !== 'snapshot') continue;
    return [task, op];
  }
  return undefined;
}

export class Operations {
  private waiters = new Set<() => void>();
  constructor(
    private readonly db: Db,
    private readonly retryMs: () => number,
  ) {}

  /** Run `fn` with `marks` set, after waiting (up to the retry policy) for conflicting operations. */
  async run<T>(marks: Mark[], task: string | undefined, fn: () => T | Promise<T>): Promise<T> {
    const id = task ?? `OpaqueRef:${randomUUID()}`;
    const deadline = Date.now() + this.retryMs();
    for (;;) {
      const conflict = this.conflict(marks);
      if (!conflict) break;
      if (Date.now() >= deadline) throw conflict;
      await this.released(deadline - Date.now());
    }
    this.set(marks, id, true);
    try {
      return await fn();
    } finally {
      this.set(marks, id, false);
      for (const w of [...this.waiters]) w();
    }
  }

  /** Whether any object of `marks` has an operation running (for callers that must not wait). */
  busy(marks: Mark[]): boolean {
    return this.conflict(marks) !== undefined;
  }

  private conflict(marks: Mark[]): XapiError | undefined {
    for (const m of marks) {
      const rec = this.db.find(m.cls, m.ref);
      const b = rec && blocking(m, rec);
      if (!b) continue;
      if (m.cls === 'VDI' && b[1] === 'copy' && m.op === 'snapshot')
        throw new XapiError('OPERATION_NOT_ALLOWED', ['Snapshot operation not allowed during copy.']);
      return new XapiError('OTHER_OPERATION_IN_PROGRESS', [m.cls, m.ref, b[1], b[0]]);
    }
    return undefined;
  }

  private set(marks: Mark[], task: string, on: boolean): void {
    for (const m of marks) {
      const rec = this.db.find(m.cls, m.ref);
      if (!rec) continue;
      const ops = { ...((rec.current_operations ?? {}) as Record<string, string>) };
      if (on) ops[task] = m.op;
      else delete ops[task];
      rec.current_operations = ops;
      this.db.touch(m.cls, m.ref);
    }
  }

  /** Resolves when some operation ends, or after `ms` (xapi also wakes up on a timer: 1–20 s). */
  private released(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, Math.min(ms, 1000)));
      timer.unref();
      this.waiters.add(done);
    });
  }
}
