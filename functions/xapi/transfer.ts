/**
 * HTTP VDI data paths: `GET /export_raw_vdi` and `PUT /import_raw_vdi`, each tracked by a task made
 * with `task.create`. Completion and failure come from the task (XAPI sends 200 before the data, so
 * errors during the transfer are only visible there). Back-pressure is end to end: the export body
 * is undici's stream, the import body is the caller's Readable handed to undici.
 */
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import { ClientCodes, XapiError, XapiTransportError } from './errors.js';
import type { TaskRecord } from './records.js';
import { abortReason, mapTransportError } from './rpc.js';
import { type SessionCaller, taskError, waitForTask } from './tasks.js';

export interface ExportVdiOptions {
  /** VDI ref. */
  vdi: string;
  /** Base VDI ref: the export holds only what differs from it (a differencing VHD, or a qcow2 of the changed clusters). */
  base?: string;
  format: 'vhd' | 'raw' | 'qcow2';
  signal?: AbortSignal;
}

export interface VdiExport {
  body: Readable;
  task: string;
  /** Resolves when the body was read to its end and the task succeeded; rejects with XapiError otherwise. */
  done: Promise<void>;
}

export interface ImportVdiOptions {
  /** VDI ref. */
  vdi: string;
  format: 'vhd' | 'raw';
  body: Readable;
  /** Exact byte count of `body` (XAPI refuses HTTP chunked uploads). */
  contentLength: number;
  /** XAPI's own raw framing (`{offset u64le, length u32le}` + data), raw only. */
  chunked?: boolean;
  signal?: AbortSignal;
}

export interface TransferContext {
  caller: SessionCaller & { cancelTask(t: string): Promise<void>; destroyTask(t: string): Promise<void> };
  dispatcher: Dispatcher;
  url(): string;
  session(): string;
  allowPlainHttp: boolean;
  taskTimeoutMs: number;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 3;
/** How long a task may stay pending once its HTTP exchange is over before we call it incomplete. */
const SETTLE_MS = 30_000;

function combine(...signals: (AbortSignal | undefined)[]): AbortSignal | undefined {
  const s = signals.filter((x): x is AbortSignal => x !== undefined);
  return s.length === 0 ? undefined : s.length === 1 ? s[0] : AbortSignal.any(s);
}

function buildUrl(base: string, path: string, query: Record<string, string | undefined>): URL {
  const u = new URL(path, base);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.set(k, v);
  return u;
}

/** A redirect target: absolute or relative to the request; plain http only when allowed. */
function redirectTarget(from: URL, location: string, allowPlainHttp: boolean): URL {
  const to = new URL(location, from);
  if (to.protocol === 'http:' && !allowPlainHttp)
    throw new XapiError('PLAIN_HTTP_REFUSED', [to.host], 'redirect');
  if (to.protocol !== 'http:' && to.protocol !== 'https:')
    throw new XapiError('INVALID_URL', [to.protocol], 'redirect');
  return to;
}

/** A system or undici socket error, or an abort: what the upload's own connection fails with. */
function isSocketError(err: Error): boolean {
  if (err instanceof XapiTransportError || err.name === 'AbortError') return true;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (/^E[A-Z0-9]+$/.test(code) || code.startsWith('UND_ERR_'));
}

async function createTask(ctx: TransferContext, label: string): Promise<string> {
  const task = await ctx.caller.invoke('task.create', [label, 'xcr transfer']);
  if (typeof task !== 'string') throw new XapiError(ClientCodes.BAD_RESPONSE, ['task ref'], 'task.create');
  return task;
}

/** The task's verdict once the HTTP side is over: success → record; failure → its XapiError. */
async function settleTask(
  ctx: TransferContext,
  task: string,
  method: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<TaskRecord | undefined> {
  try {
    const rec = await waitForTask(ctx.caller, task, { timeoutMs, ...(signal ? { signal } : {}) });
    if (rec.status !== 'success') throw taskError(rec, method);
    return rec;
  } catch (e) {
    if (e instanceof XapiError && e.code === ClientCodes.TASK_TIMEOUT) return undefined;
    throw e;
  }
}

/**
 * After a failed HTTP exchange: the task's own error when it reports one within a moment (it explains
 * a cut stream better than the socket does), else `fallback`. A task still pending is cancelled.
 */
async function explainFailure(
  ctx: TransferContext,
  task: string,
  method: string,
  fallback: Error,
  signal?: AbortSignal,
): Promise<Error> {
  if (signal?.aborted) {
    await ctx.caller.cancelTask(task);
    return abortReason(signal);
  }
  try {
    const rec = await settleTask(ctx, task, method, 2_000);
    if (rec) return fallback;
  } catch (e) {
    if (e instanceof XapiError) return e;
  }
  await ctx.caller.cancelTask(task);
  return fallback;
}

/** Fails the stream at once if the body starts with `HTTP/` (xapi's error response inside a 200). */
class HttpPrefixCheck extends Transform {
  #head: Buffer | undefined = Buffer.alloc(0);
  constructor(private readonly method: string) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.#head) {
      cb(null, chunk);
      return;
    }
    const head = Buffer.concat([this.#head, chunk]);
    if (head.length < 5) {
      this.#head = head;
      cb();
    } else if (head.subarray(0, 5).toString('latin1') === 'HTTP/') {
      cb(new XapiError(ClientCodes.EXPORT_BODY_IS_HTTP_ERROR, [], this.method));
    } else {
      this.#head = undefined;
      cb(null, head);
    }
  }
  override _flush(cb: TransformCallback): void {
    // Fewer than 5 bytes in all cannot hold an HTTP response; pass them on.
    if (this.#head && this.#head.length > 0) this.push(this.#head);
    this.#head = undefined;
    cb();
  }
}

export async function exportVdi(ctx: TransferContext, o: ExportVdiOptions): Promise<VdiExport> {
  const method = 'export_raw_vdi';
  if (o.base !== undefined && o.format === 'raw')
    throw new XapiError('INVALID_ARGUMENT', ['base needs vhd or qcow2'], method);
  const signal = combine(o.signal, ctx.signal);
  const task = await createTask(ctx, `xcr export ${o.format}`);
  let url = buildUrl(ctx.url(), '/export_raw_vdi', {
    session_id: ctx.session(),
    task_id: task,
    vdi: o.vdi,
    format: o.format,
    base: o.base,
  });
  let res: Dispatcher.ResponseData | undefined;
  try {
    for (let i = 0; ; i++) {
      res = await request(url, { method: 'GET', dispatcher: ctx.dispatcher, ...(signal ? { signal } : {}) });
      const location = res.headers.location;
      if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
        await res.body.dump();
        if (i >= MAX_REDIRECTS) throw new XapiError(ClientCodes.TOO_MANY_REDIRECTS, [], method);
        url = redirectTarget(url, location, ctx.allowPlainHttp);
        continue;
      }
      break;
    }
    if (res.statusCode !== 200) {
      await res.body.dump().catch(() => {});
      throw new XapiError(ClientCodes.HTTP_STATUS, [String(res.statusCode)], method);
    }
  } catch (e) {
    // The task usually explains a refusal (unknown format, auth, missing VDI).
    const err = await explainFailure(
      ctx,
      task,
      method,
      mapTransportError(e, `${method} ${o.vdi}`, false),
      signal,
    );
    await ctx.caller.destroyTask(task);
    throw err;
  }

  const check = new HttpPrefixCheck(method);
  const bodyDone = new Promise<Error | undefined>((resolve) => {
    pipeline(res.body, check, (err) => resolve(err ?? undefined));
  });
  const done = (async () => {
    try {
      const bodyErr = await bodyDone;
      if (bodyErr) {
        const fallback =
          bodyErr instanceof XapiError
            ? bodyErr
            : new XapiError(ClientCodes.TRANSFER_INCOMPLETE, [bodyErr.message], method);
        throw await explainFailure(ctx, task, method, fallback, signal);
      }
      const rec = await settleTask(ctx, task, method, Math.min(ctx.taskTimeoutMs, SETTLE_MS), signal);
      if (!rec) {
        await ctx.caller.cancelTask(task);
        throw new XapiError(
          ClientCodes.TRANSFER_INCOMPLETE,
          ['task still pending after the body ended'],
          method,
        );
      }
    } finally {
      await ctx.caller.destroyTask(task);
    }
  })();
  done.catch(() => {}); // the caller may only look at the body's error; never an unhandled rejection
  return { body: check, task, done };
}

export async function importVdi(ctx: TransferContext, o: ImportVdiOptions): Promise<void> {
  const method = 'import_raw_vdi';
  if (!Number.isSafeInteger(o.contentLength) || o.contentLength < 0) {
    throw new XapiError('INVALID_ARGUMENT', ['contentLength'], method);
  }
  if (o.chunked && o.format !== 'raw') throw new XapiError('INVALID_ARGUMENT', ['chunked needs raw'], method);
  const signal = combine(o.signal, ctx.signal);
  const query = {
    session_id: ctx.session(),
    vdi: o.vdi,
    format: o.format,
    chunked: o.chunked ? 'true' : undefined,
  };
  // Probe with an empty body and no task (it is meant to fail) to learn a redirect before streaming;
  // the task is created meanwhile.
  const probe = async (): Promise<URL> => {
    let target = buildUrl(ctx.url(), '/import_raw_vdi', query);
    for (let i = 0; i < MAX_REDIRECTS; i++) {
      const res = await request(target, {
        method: 'PUT',
        dispatcher: ctx.dispatcher,
        headers: { 'content-length': '0' },
        body: '',
        ...(signal ? { signal } : {}),
      });
      await res.body.dump().catch(() => {});
      const location = res.headers.location;
      if (res.statusCode < 300 || res.statusCode >= 400 || typeof location !== 'string') break;
      target = redirectTarget(target, location, ctx.allowPlainHttp);
    }
    return target;
  };
  const [probed, created] = await Promise.allSettled([probe(), createTask(ctx, `xcr import ${o.format}`)]);
  if (probed.status === 'rejected' || created.status === 'rejected') {
    o.body.destroy();
    if (created.status === 'fulfilled') await ctx.caller.destroyTask(created.value);
    const e: unknown =
      probed.status === 'rejected' ? probed.reason : (created as PromiseRejectedResult).reason;
    throw mapTransportError(e, `${method} ${o.vdi}`, false, [signal]);
  }
  const target = probed.value;
  const task = created.value;
  let ok = false;
  target.searchParams.set('task_id', task);
  try {
    let status: number;
    try {
      const res = await request(target, {
        method: 'PUT',
        dispatcher: ctx.dispatcher,
        headers: { 'content-length': String(o.contentLength), 'content-type': 'application/octet-stream' },
        body: o.body,
        ...(signal ? { signal } : {}),
      });
      status = res.statusCode;
      await res.body.dump({ limit: 1 << 20 }).catch(() => {});
    } catch (e) {
      // The body's producer failed by itself (an NBD read, a verifier): the host's task has nothing
      // to add. undici destroys the body with the socket's error too, so those go the usual way.
      const own = o.body.errored;
      if (own && !signal?.aborted && !isSocketError(own)) {
        await ctx.caller.cancelTask(task);
        throw own; // as it is: its class says whether a retry can help
      }
      throw await explainFailure(
        ctx,
        task,
        method,
        mapTransportError(e, `${method} ${o.vdi}`, false),
        signal,
      );
    }
    if (status !== 200) {
      throw await explainFailure(
        ctx,
        task,
        method,
        new XapiError(ClientCodes.HTTP_STATUS, [String(status)], method),
      );
    }
    const rec = await settleTask(ctx, task, method, Math.min(ctx.taskTimeoutMs, SETTLE_MS), signal);
    if (!rec) {
      await ctx.caller.cancelTask(task);
      throw new XapiError(ClientCodes.TRANSFER_INCOMPLETE, ['task still pending after the upload'], method);
    }
    ok = true;
  } finally {
    // On failure stop the producer; on success leave it alone: it may still be delivering its own
    // end (an export body sees EOF after the import has its Content-Length bytes).
    if (!ok && !o.body.destroyed) o.body.destroy();
    await ctx.caller.destroyTask(task);
  }
}
