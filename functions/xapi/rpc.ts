/**
 * One RPC over HTTP (XML-RPC on `POST /`, JSON-RPC on `POST /jsonrpc`) with undici, a per-call
 * timeout and the mapping of low-level failures to `XapiTransportError`. No session logic here.
 */
import { type Dispatcher, request } from 'undici';
import { abortReason } from '../retry/index.js';
import { ClientCodes, XapiError, XapiTransportError } from './errors.js';
import {
  decodeJsonRpcResponse,
  decodeXmlRpcResponse,
  encodeJsonRpcCall,
  encodeXmlRpcCall,
  MalformedResponseError,
  type RpcOutcome,
} from './marshal.js';

export type TransportKind = 'xmlrpc' | 'jsonrpc';

export interface RpcRequest {
  baseUrl: string;
  kind: TransportKind;
  dispatcher: Dispatcher;
  method: string;
  params: readonly unknown[];
  timeoutMs: number;
  /** Any of them aborts the call. */
  signals?: readonly (AbortSignal | undefined)[];
}

export { abortReason };

let jsonId = 0;

/**
 * Combines the callers' signals with a timeout; tells which one fired. A plain timer and listeners
 * (disposed after the call) rather than AbortSignal.timeout/any, which cost and linger per call.
 */
export function withTimeout(
  timeoutMs: number,
  signals: readonly (AbortSignal | undefined)[] = [],
): { signal: AbortSignal; timedOut: () => boolean; dispose: () => void } {
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new XapiTransportError('timed out', 'ETIMEDOUT'));
  }, timeoutMs);
  const live = signals.filter((s): s is AbortSignal => s !== undefined);
  const onAbort = function (this: AbortSignal) {
    ac.abort(this.reason);
  };
  for (const s of live) {
    if (s.aborted) ac.abort(s.reason);
    else s.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: ac.signal,
    timedOut: () => timedOut,
    dispose: () => {
      clearTimeout(timer);
      for (const s of live) s.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * Converts anything thrown by undici/sockets into the client's error vocabulary: the caller's
 * abort stays an abort, XAPI/transport errors pass through, the rest is a transport failure.
 */
export function mapTransportError(
  e: unknown,
  what: string,
  timedOut: boolean,
  signals: readonly (AbortSignal | undefined)[] = [],
): Error {
  for (const s of signals) if (s?.aborted) return abortReason(s);
  if (timedOut) return new XapiTransportError(`${what}: timed out`, 'ETIMEDOUT');
  if (e instanceof XapiError || e instanceof XapiTransportError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  // undici wraps the connector's error in `cause` for some paths.
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof XapiTransportError) return cause;
  const code = (err as { code?: unknown }).code;
  const causeCode = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  const c = typeof causeCode === 'string' ? causeCode : typeof code === 'string' ? code : 'TRANSPORT';
  return new XapiTransportError(`${what}: ${err.message}`, c, { cause: err });
}

export async function rpc(r: RpcRequest): Promise<RpcOutcome> {
  const path = r.kind === 'xmlrpc' ? '/' : '/jsonrpc';
  const body =
    r.kind === 'xmlrpc'
      ? encodeXmlRpcCall(r.method, r.params)
      : encodeJsonRpcCall(r.method, r.params, ++jsonId);
  const t = withTimeout(r.timeoutMs, r.signals);
  const what = `XAPI ${r.method}`;
  try {
    const res = await request(new URL(path, r.baseUrl), {
      method: 'POST',
      dispatcher: r.dispatcher,
      signal: t.signal,
      headers: {
        'content-type': r.kind === 'xmlrpc' ? 'text/xml' : 'application/json',
        'user-agent': 'xcr',
      },
      body,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      throw new XapiError(ClientCodes.HTTP_STATUS, [String(res.statusCode)], r.method);
    }
    try {
      return r.kind === 'xmlrpc' ? await decodeXmlRpcResponse(text) : decodeJsonRpcResponse(text);
    } catch (e) {
      if (e instanceof MalformedResponseError)
        throw new XapiError(ClientCodes.BAD_RESPONSE, [e.message], r.method);
      throw e;
    }
  } catch (e) {
    throw mapTransportError(e, what, t.timedOut(), r.signals);
  } finally {
    t.dispose();
  }
}
