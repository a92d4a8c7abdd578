/**
 * All wire-type knowledge of the client: how JS values become XAPI XML-RPC / JSON-RPC values and
 * back. The `xmlrpc` package writes the XML of calls, `xmlrpc-reader.ts` reads responses; XAPI-specific
 * typing lives here.
 *
 * Outgoing: integers → decimal strings (XAPI accepts them for int params; `<int>` overflows at 2^31),
 * other numbers and `XapiDouble` → `<double>`, booleans → `<boolean>`, Dates → XAPI's basic ISO-8601
 * string, Buffers → `<base64>`, arrays/objects recursively (undefined members omitted).
 * Incoming: a XAPI envelope `{Status, Value | ErrorDescription}` (XML-RPC, read by `xmlrpc-reader.ts`)
 * or a JSON-RPC v1/v2 reply.
 */
// Static imports, not createRequire: bundlers (the Lambda esbuild bundle) inline only static imports,
// and a bundle has no node_modules to require from at run time.
// @ts-expect-error xmlrpc ships no types for its internal modules
import customTypeModule from 'xmlrpc/lib/customtype.js';
// @ts-expect-error xmlrpc ships no types for its internal modules
import serializerModule from 'xmlrpc/lib/serializer.js';
import { readXmlRpcResponse } from './xmlrpc-reader.js';

interface XmlNode {
  ele(name: string): XmlNode;
  txt(text: string): XmlNode;
}
interface CustomTypeCtor {
  new (raw: string): { raw: string; tagName: string; serialize(xml: XmlNode): XmlNode };
  prototype: { tagName: string };
}

const serializer = serializerModule as {
  serializeMethodCall(method: string, params: unknown[]): string;
};
const CustomType = customTypeModule as CustomTypeCtor;

/** A float parameter that must go out as `<double>` even when integral (e.g. event.from's timeout). */
export class XapiDouble {
  constructor(readonly value: number) {}
}
export const asDouble = (n: number): XapiDouble => new XapiDouble(n);

class DoubleTag extends CustomType {
  constructor(value: number) {
    // %.16g-like: JS shortest round-trip form is accepted by XAPI's float_of_string.
    super(Number.isInteger(value) ? value.toFixed(1) : String(value));
  }
}
DoubleTag.prototype.tagName = 'double';

/** Formats a Date the way XAPI writes datetimes: `YYYYMMDDTHH:MM:SSZ` (UTC). */
export function formatXapiDate(d: Date): string {
  const iso = d.toISOString(); // 2025-03-19T04:16:24.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 19)}Z`;
}

const XAPI_DATE = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/;

/** Parses XAPI datetimes (basic or extended ISO-8601; no zone = UTC). Returns undefined if not a date. */
export function parseXapiDate(s: string): Date | undefined {
  const m = XAPI_DATE.exec(s);
  if (!m) return undefined;
  const zone = m[7] ?? 'Z';
  const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${zone === 'Z' ? 'Z' : zone}`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function invalid(path: string, what: string): never {
  throw new TypeError(`cannot send ${what} to XAPI (at ${path || 'param'})`);
}

/** JS value → the value handed to the xmlrpc serializer. */
export function toXmlRpcValue(v: unknown, path = ''): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'bigint':
      return v.toString();
    case 'number':
      if (!Number.isFinite(v)) invalid(path, String(v));
      return Number.isInteger(v) ? String(v) : new DoubleTag(v);
    case 'object': {
      if (v === null) return invalid(path, 'null');
      if (v instanceof XapiDouble) {
        if (!Number.isFinite(v.value)) invalid(path, String(v.value));
        return new DoubleTag(v.value);
      }
      if (v instanceof Date) return formatXapiDate(v);
      if (Buffer.isBuffer(v)) return v;
      if (Array.isArray(v)) return v.map((x, i) => toXmlRpcValue(x, `${path}[${i}]`));
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toXmlRpcValue(x, `${path}.${k}`);
      return out;
    }
    default:
      return invalid(path, typeof v);
  }
}

/** JS value → JSON-RPC param (XAPI's JSON-RPC takes numbers for ints, strings for datetimes). */
export function toJsonRpcValue(v: unknown, path = ''): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'bigint':
      return v.toString();
    case 'number':
      if (!Number.isFinite(v)) invalid(path, String(v));
      return v;
    case 'object': {
      if (v === null) return invalid(path, 'null');
      if (v instanceof XapiDouble) return v.value;
      if (v instanceof Date) return formatXapiDate(v);
      if (Buffer.isBuffer(v)) return v.toString('base64');
      if (Array.isArray(v)) return v.map((x, i) => toJsonRpcValue(x, `${path}[${i}]`));
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = toJsonRpcValue(x, `${path}.${k}`);
      return out;
    }
    default:
      return invalid(path, typeof v);
  }
}

export function encodeXmlRpcCall(method: string, params: readonly unknown[]): string {
  return serializer.serializeMethodCall(
    method,
    params.map((p, i) => toXmlRpcValue(p, `params[${i}]`)),
  );
}

export function encodeJsonRpcCall(method: string, params: readonly unknown[], id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    method,
    params: params.map((p, i) => toJsonRpcValue(p, `params[${i}]`)),
    id,
  });
}

/** The outcome of one RPC: a value, or XAPI's ErrorDescription `[CODE, ...params]`. */
export type RpcOutcome = { ok: true; value: unknown } | { ok: false; error: string[] };

export class MalformedResponseError extends Error {
  override readonly name = 'MalformedResponseError';
}

/** The response's value (`xmlrpc-reader.ts`: the package's values, without its SAX parser). */
function deserialize(xml: string): Promise<unknown> {
  try {
    return Promise.resolve(readXmlRpcResponse(xml));
  } catch (err) {
    return Promise.reject(new MalformedResponseError(`invalid XML-RPC: ${(err as Error).message}`));
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !Buffer.isBuffer(v)
  );
}

function asErrorDescription(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0)
    throw new MalformedResponseError('failure without ErrorDescription');
  return v.map((x) => (typeof x === 'string' ? x : String(x)));
}

/** Parses a XAPI XML-RPC response body (always a `{Status, …}` struct, never a `<fault>`). */
export async function decodeXmlRpcResponse(xml: string): Promise<RpcOutcome> {
  const v = await deserialize(xml);
  if (!isRecord(v)) throw new MalformedResponseError('response is not a struct');
  if (v.Status === 'Success') return { ok: true, value: 'Value' in v ? v.Value : '' };
  if (v.Status === 'Failure') return { ok: false, error: asErrorDescription(v.ErrorDescription) };
  throw new MalformedResponseError('response has no Status');
}

/** Parses a JSON-RPC v1 (`{result, error}`) or v2 (`{error: {code, message, data}}`) reply. */
export function decodeJsonRpcResponse(text: string): RpcOutcome {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MalformedResponseError(`invalid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(v)) throw new MalformedResponseError('response is not an object');
  const err = v.error;
  if (err !== undefined && err !== null) {
    if (Array.isArray(err)) return { ok: false, error: asErrorDescription(err) };
    if (isRecord(err) && typeof err.message === 'string') {
      const data = Array.isArray(err.data) ? err.data : err.data === undefined ? [] : [err.data];
      return { ok: false, error: [err.message, ...data.map((x) => (typeof x === 'string' ? x : String(x)))] };
    }
    throw new MalformedResponseError('unrecognised error member');
  }
  if (!('result' in v)) throw new MalformedResponseError('response has neither result nor error');
  return { ok: true, value: v.result };
}

/**
 * Parses a task's `result` field: the XML-RPC serialisation of the return value as a string
 * (`<value>OpaqueRef:…</value>`), for JSON-RPC clients too. Empty → `''` (void / HTTP tasks).
 */
export async function parseTaskResult(result: string): Promise<unknown> {
  const trimmed = result.trim();
  if (trimmed === '') return '';
  if (!trimmed.startsWith('<value')) return trimmed;
  const v = await deserialize(
    `<?xml version="1.0"?><methodResponse><params><param>${trimmed}</param></params></methodResponse>`,
  );
  return v;
}
