/**
 * Waiting for XAPI tasks: block in `event.from(["task/<ref>"], token, timeout)` until the task leaves
 * `pending`, falling back to polling `task.get_record` with backoff if event.from fails.
 */

import { abortReason, sleep } from '../retry/index.js';
import { ClientCodes, XapiError } from './errors.js';
import { asDouble, parseTaskResult } from './marshal.js';
import { normaliseRecord, type TaskRecord } from './records.js';

/** Session-bound calls, as the client provides them (session injected, relogin handled). */
export interface SessionCaller {
  invoke(
    method: string,
    params: readonly unknown[],
    opts?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<unknown>;
  readonly callTimeoutMs: number;
}

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Longest single event.from block, seconds (tests use small values). */
  eventWaitSec?: number;
}

const FINISHED = new Set(['success', 'failure', 'cancelled']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Resolves with the finished task record (success, failure or cancelled). */
export async function waitForTask(x: SessionCaller, task: string, o: WaitOptions): Promise<TaskRecord> {
  const deadline = Date.now() + o.timeoutMs;
  let token = '';
  let useEvents = true;
  let pollDelay = 50;
  for (;;) {
    if (o.signal?.aborted) throw abortReason(o.signal);
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new XapiError(ClientCodes.TASK_TIMEOUT, [task], 'task.wait');
    if (useEvents) {
      const waitSec = Math.max(0.05, Math.min(remaining, (o.eventWaitSec ?? 30) * 1000) / 1000);
      let batch: unknown;
      try {
        batch = await x.invoke('event.from', [[`task/${task}`], token, asDouble(waitSec)], {
          timeoutMs: waitSec * 1000 + x.callTimeoutMs,
          ...(o.signal ? { signal: o.signal } : {}),
        });
      } catch (e) {
        if (o.signal?.aborted) throw abortReason(o.signal);
        if (e instanceof XapiError && e.code === 'SESSION_INVALID') throw e;
        useEvents = false; // old host, RBAC, token trouble: poll instead
        continue;
      }
      if (!isRecord(batch)) {
        useEvents = false;
        continue;
      }
      const first = token === '';
      if (typeof batch.token === 'string') token = batch.token;
      const events = Array.isArray(batch.events) ? batch.events : [];
      if (first && !events.some((ev) => isRecord(ev) && ev.ref === task)) {
        // From the beginning of time every live object is an `add`: absent means gone (HANDLE_INVALID).
        const rec = normaliseRecord(
          'task',
          await x.invoke('task.get_record', [task], o.signal ? { signal: o.signal } : {}),
        );
        if (FINISHED.has(rec.status)) return rec;
      }
      for (const ev of events) {
        if (!isRecord(ev) || ev.ref !== task) continue;
        if (ev.operation === 'del') throw new XapiError('HANDLE_INVALID', ['task', task], 'task.wait');
        if (!isRecord(ev.snapshot)) continue;
        const rec = normaliseRecord('task', ev.snapshot);
        if (FINISHED.has(rec.status)) return rec;
      }
    } else {
      const rec = normaliseRecord(
        'task',
        await x.invoke('task.get_record', [task], o.signal ? { signal: o.signal } : {}),
      );
      if (FINISHED.has(rec.status)) return rec;
      await sleep(Math.min(pollDelay, Math.max(1, deadline - Date.now())), o.signal);
      pollDelay = Math.min(pollDelay * 2, 2000);
    }
  }
}

/** The error a failed/cancelled task carries, attributed to `method`. */
export function taskError(rec: TaskRecord, method: string): XapiError {
  const info = Array.isArray(rec.error_info) ? rec.error_info.map(String) : [];
  const [code, ...params] = info.length
    ? info
    : [rec.status === 'cancelled' ? 'TASK_CANCELLED' : 'INTERNAL_ERROR'];
  return new XapiError(code ?? 'INTERNAL_ERROR', params, method);
}

/** The parsed return value of a successful task. */
export function taskResult(rec: TaskRecord): Promise<unknown> {
  return parseTaskResult(typeof rec.result === 'string' ? rec.result : '');
}
