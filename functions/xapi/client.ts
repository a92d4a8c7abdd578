/**
 * The XAPI client: sessions (login, re-login on SESSION_INVALID, following HOST_IS_SLAVE to the
 * master), typed calls, Async calls waited through tasks, the few retries XAPI needs (VDI_IN_USE on
 * destroys, TOO_MANY_PENDING_TASKS on Async calls) and the HTTP VDI data paths.
 */
import type { Dispatcher } from 'undici';
import { IN_PLACE_RETRY, retrying } from '../retry/index.js';
import { ClientCodes, forgetSecret, registerSecret, XapiError, XapiTransportError } from './errors.js';
import { normaliseRecord, type XapiRecords } from './records.js';
import { rpc, type TransportKind } from './rpc.js';
import { type SessionCaller, taskError, taskResult, waitForTask } from './tasks.js';
import { CertificatePins, createDispatcher, fingerprintOfPem, type TlsOptions } from './tls.js';
import {
  type ExportVdiOptions,
  exportVdi,
  type ImportVdiOptions,
  importVdi,
  type VdiExport,
} from './transfer.js';

export interface XapiOptions {
  /** https://host or http://host[:port] (the pool master or any member). */
  url: string;
  username: string;
  password: string;
  tls?: TlsOptions;
  /** http:// is refused unless true. */
  allowPlainHttp?: boolean;
  /** Default 'xmlrpc'. */
  transport?: TransportKind;
  /** Per RPC, default 60 s. */
  callTimeoutMs?: number;
  /** For Async waits and data transfers, default 1 h. */
  taskTimeoutMs?: number;
  /** For VDI_IN_USE / TOO_MANY_PENDING_TASKS, default 10 attempts, 1 s base delay. */
  retry?: { attempts?: number; delayMs?: number };
  signal?: AbortSignal;
}

const MAX_HOPS = 3;
const LOGIN = 'session.login_with_password';
/** Calls XO retries on VDI_IN_USE (a dom0 VBD or a finishing operation briefly holds the disk). */
const DESTROY_TYPE = new Set(['VDI.destroy', 'VDI.data_destroy', 'VM.destroy']);
const MAP_RETRIES = 10;

/** Origin URL of `address` (`ip`, `ip:port`, `[v6]:port`, bare v6) with the scheme of `current`. */
export function hostUrl(current: string, address: string): string {
  let host = address.trim();
  if (host.indexOf(':') !== host.lastIndexOf(':') && !host.startsWith('[')) host = `[${host}]`;
  return new URL(`${new URL(current).protocol}//${host}`).origin;
}

/** Refuses plain http unless explicitly allowed; returns the origin. */
export function checkUrl(url: string, allowPlainHttp: boolean | undefined): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new XapiError('INVALID_URL', [], 'connect');
  }
  if (u.protocol === 'http:' && !allowPlainHttp) {
    throw new XapiError('PLAIN_HTTP_REFUSED', [u.host], 'connect');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new XapiError('INVALID_URL', [u.protocol], 'connect');
  return u.origin;
}

interface InvokeOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Cleanup calls (task.destroy/cancel) still run after the client's signal fired. */
  cleanup?: boolean;
}

export class Xapi implements SessionCaller {
  #url: string;
  #session: string | undefined;
  #reconnecting: Promise<void> | undefined;
  readonly #opts: XapiOptions;
  readonly #kind: TransportKind;
  readonly #dispatcher: Dispatcher;
  readonly #pins: CertificatePins;
  readonly callTimeoutMs: number;
  readonly taskTimeoutMs: number;
  readonly #attempts: number;
  readonly #delayMs: number;

  private constructor(opts: XapiOptions) {
    this.#opts = opts;
    this.#url = checkUrl(opts.url, opts.allowPlainHttp);
    this.#kind = opts.transport ?? 'xmlrpc';
    this.callTimeoutMs = opts.callTimeoutMs ?? 60_000;
    this.taskTimeoutMs = opts.taskTimeoutMs ?? 3_600_000;
    this.#attempts = Math.max(1, opts.retry?.attempts ?? 10);
    this.#delayMs = opts.retry?.delayMs ?? 1000;
    this.#pins = new CertificatePins(opts.tls?.fingerprint256);
    this.#dispatcher = createDispatcher({
      ...(opts.tls ? { tls: opts.tls } : {}),
      pins: this.#pins,
      connectTimeoutMs: Math.min(this.callTimeoutMs, 30_000),
    });
  }

  /** Logs in (following HOST_IS_SLAVE, at most 3 hops). */
  static async connect(opts: XapiOptions): Promise<Xapi> {
    const x = new Xapi(opts);
    registerSecret(opts.password);
    try {
      await x.#login();
    } catch (e) {
      await x.#dispatcher.close().catch(() => {});
      forgetSecret(opts.password);
      throw e;
    }
    return x;
  }

  /** The pool master actually in use. */
  get url(): string {
    return this.#url;
  }

  toString(): string {
    return `Xapi(${this.#url})`;
  }

  toJSON(): Record<string, unknown> {
    return { url: this.#url, transport: this.#kind };
  }

  async #login(): Promise<void> {
    for (let hops = 0; ; hops++) {
      const out = await rpc({
        baseUrl: this.#url,
        kind: this.#kind,
        dispatcher: this.#dispatcher,
        method: LOGIN,
        params: [this.#opts.username, this.#opts.password, '1.1', 'xcr'],
        timeoutMs: this.callTimeoutMs,
        signals: [this.#opts.signal],
      });
      if (out.ok) {
        if (typeof out.value !== 'string') throw new XapiError(ClientCodes.BAD_RESPONSE, ['session'], LOGIN);
        if (this.#session) forgetSecret(this.#session);
        registerSecret(out.value);
        await this.#learnCertificates(out.value);
        this.#session = out.value;
        return;
      }
      const [code = 'INTERNAL_ERROR', ...params] = out.error;
      if (code === 'HOST_IS_SLAVE' && params[0]) {
        if (hops >= MAX_HOPS) throw new XapiError(ClientCodes.TOO_MANY_REDIRECTS, [params[0]], LOGIN);
        this.#url = checkUrl(hostUrl(this.#url, params[0]), this.#opts.allowPlainHttp);
        continue;
      }
      throw new XapiError(code, params, LOGIN);
    }
  }

  /**
   * With a pinned certificate, each pool member has its own self-signed certificate: learn them over
   * the verified session so data-path redirects and master changes to members still verify.
   */
  async #learnCertificates(session: string): Promise<void> {
    if (!this.#pins.active || !this.#url.startsWith('https:')) return;
    const raw = async (method: string, params: unknown[]): Promise<unknown> => {
      const out = await rpc({
        baseUrl: this.#url,
        kind: this.#kind,
        dispatcher: this.#dispatcher,
        method,
        params: [session, ...params],
        timeoutMs: this.callTimeoutMs,
      });
      if (!out.ok) throw new XapiError(out.error[0] ?? 'INTERNAL_ERROR', out.error.slice(1), method);
      return out.value;
    };
    try {
      const hosts = await raw('host.get_all', []);
      for (const h of Array.isArray(hosts) ? hosts : []) {
        const pem = await raw('host.get_server_certificate', [h]);
        if (typeof pem === 'string' && pem.includes('BEGIN CERTIFICATE'))
          this.#pins.add(fingerprintOfPem(pem));
      }
    } catch {
      // Older hosts or RBAC: redirects to other members then fail the pin check, never silently pass.
    }
  }

  /** Re-login once for everyone who saw `stale` fail; optionally moving to a new master first. */
  async #reconnect(stale: string, newUrl?: string): Promise<void> {
    if (this.#session !== stale) return; // someone already replaced it
    if (!this.#reconnecting) {
      if (newUrl) this.#url = newUrl;
      this.#reconnecting = this.#login().finally(() => {
        this.#reconnecting = undefined;
      });
    }
    await this.#reconnecting;
  }

  /** A session-bound RPC: injects the session, re-logs in once, follows a master change. */
  async invoke(method: string, params: readonly unknown[], o: InvokeOptions = {}): Promise<unknown> {
    let relogged = false;
    for (let hops = 0; ; ) {
      if (this.#reconnecting) await this.#reconnecting;
      const session = this.#session;
      if (!session) throw new XapiError('SESSION_INVALID', [], method);
      const out = await rpc({
        baseUrl: this.#url,
        kind: this.#kind,
        dispatcher: this.#dispatcher,
        method,
        params: [session, ...params],
        timeoutMs: o.timeoutMs ?? this.callTimeoutMs,
        signals: [o.signal, o.cleanup ? undefined : this.#opts.signal],
      });
      if (out.ok) return out.value;
      const [code = 'INTERNAL_ERROR', ...errParams] = out.error;
      if (code === 'SESSION_INVALID' && !relogged) {
        relogged = true;
        await this.#reconnect(session);
        continue;
      }
      if (code === 'HOST_IS_SLAVE' && errParams[0] && hops < MAX_HOPS) {
        hops++;
        await this.#reconnect(session, checkUrl(hostUrl(this.#url, errParams[0]), this.#opts.allowPlainHttp));
        continue;
      }
      throw new XapiError(code, errParams, method);
    }
  }

  #retrying<T>(codes: readonly string[], fn: () => Promise<T>): Promise<T> {
    return retrying(fn, {
      attempts: this.#attempts,
      baseMs: this.#delayMs,
      maxFactor: 8,
      retryable: (e) => e instanceof XapiError && codes.includes(e.code),
      ...(this.#opts.signal ? { signal: this.#opts.signal } : {}),
    });
  }

  /** `Class.message(session, ...params)`. Only destroy-type calls retry (on VDI_IN_USE). */
  call<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    const codes = DESTROY_TYPE.has(method) ? IN_PLACE_RETRY.destroy : [];
    return this.#retrying(codes, () => this.invoke(method, params)) as Promise<T>;
  }

  /** `Async.<method>`: waits for the task, returns its parsed result, destroys the task. */
  callAsync<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    const codes = DESTROY_TYPE.has(method)
      ? [...IN_PLACE_RETRY.async, ...IN_PLACE_RETRY.destroy]
      : IN_PLACE_RETRY.async;
    return this.#retrying(codes, () => this.#runAsync(method, params)) as Promise<T>;
  }

  async #runAsync(method: string, params: readonly unknown[]): Promise<unknown> {
    const task = await this.invoke(`Async.${method}`, params);
    if (typeof task !== 'string') throw new XapiError(ClientCodes.BAD_RESPONSE, ['task ref'], method);
    try {
      const rec = await waitForTask(this, task, {
        timeoutMs: this.taskTimeoutMs,
        ...(this.#opts.signal ? { signal: this.#opts.signal } : {}),
      }).catch(async (e: unknown) => {
        await this.cancelTask(task);
        throw e;
      });
      if (rec.status === 'success') return await taskResult(rec);
      throw taskError(rec, method);
    } finally {
      await this.destroyTask(task);
    }
  }

  /** Best effort: a task that cannot be cancelled has usually just finished. */
  async cancelTask(task: string): Promise<void> {
    await this.invoke('task.cancel', [task], { cleanup: true }).catch(() => {});
  }

  /** Best effort: the server garbage-collects finished tasks anyway. */
  async destroyTask(task: string): Promise<void> {
    await this.invoke('task.destroy', [task], { cleanup: true }).catch(() => {});
  }

  async getRecord<K extends keyof XapiRecords>(cls: K, ref: string): Promise<XapiRecords[K]> {
    return normaliseRecord(cls, await this.call(`${cls}.get_record`, ref));
  }

  async getAllRecords<K extends keyof XapiRecords>(cls: K): Promise<Map<string, XapiRecords[K]>> {
    const raw = await this.call(`${cls}.get_all_records`);
    if (typeof raw !== 'object' || raw === null)
      throw new XapiError(ClientCodes.BAD_RESPONSE, [cls], 'get_all_records');
    const out = new Map<string, XapiRecords[K]>();
    for (const [ref, rec] of Object.entries(raw)) out.set(ref, normaliseRecord(cls, rec));
    return out;
  }

  async getByUuid(cls: keyof XapiRecords, uuid: string): Promise<string> {
    const ref = await this.call(`${cls}.get_by_uuid`, uuid);
    if (typeof ref !== 'string') throw new XapiError(ClientCodes.BAD_RESPONSE, [cls], `${cls}.get_by_uuid`);
    return ref;
  }

  /** Idempotent destroy: HANDLE_INVALID = already gone; VDI_IN_USE retried with backoff. */
  async destroy(cls: 'VM' | 'VDI' | 'VBD' | 'VIF', ref: string): Promise<void> {
    const method = `${cls}.destroy`;
    try {
      await this.#retrying(IN_PLACE_RETRY.destroy, () => this.invoke(method, [ref]));
    } catch (e) {
      if (e instanceof XapiError && e.code === 'HANDLE_INVALID') return;
      throw e;
    }
  }

  /** Map entry set: remove then add, looping on MAP_DUPLICATE_KEY (a concurrent writer). */
  async setMapEntry(
    cls: keyof XapiRecords,
    ref: string,
    field: string,
    key: string,
    value: string,
  ): Promise<void> {
    for (let i = 1; ; i++) {
      await this.call(`${cls}.remove_from_${field}`, ref, key);
      try {
        await this.call(`${cls}.add_to_${field}`, ref, key, value);
        return;
      } catch (e) {
        if (!(e instanceof XapiError) || e.code !== 'MAP_DUPLICATE_KEY' || i >= MAP_RETRIES) throw e;
      }
    }
  }

  exportVdi(o: ExportVdiOptions): Promise<VdiExport> {
    return exportVdi(this.#transferContext(), o);
  }

  importVdi(o: ImportVdiOptions): Promise<void> {
    return importVdi(this.#transferContext(), o);
  }

  #transferContext() {
    return {
      caller: this,
      dispatcher: this.#dispatcher,
      url: () => this.#url,
      session: () => {
        if (!this.#session) throw new XapiError('SESSION_INVALID', [], 'transfer');
        return this.#session;
      },
      allowPlainHttp: this.#opts.allowPlainHttp ?? false,
      taskTimeoutMs: this.taskTimeoutMs,
      ...(this.#opts.signal ? { signal: this.#opts.signal } : {}),
    };
  }

  /** Logs out (a session already gone is fine) and closes the connections. */
  async logout(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    try {
      if (session) {
        await rpc({
          baseUrl: this.#url,
          kind: this.#kind,
          dispatcher: this.#dispatcher,
          method: 'session.logout',
          params: [session],
          timeoutMs: this.callTimeoutMs,
        }).catch((e: unknown) => {
          if (!(e instanceof XapiTransportError)) throw e;
        });
      }
    } finally {
      await this.#dispatcher.close().catch(() => {});
      if (session) forgetSecret(session);
      forgetSecret(this.#opts.password);
    }
  }
}
