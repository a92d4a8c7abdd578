/**
 * The simulator's value model and XAPI's exact XML-RPC / JSON-RPC encodings of it.
 * Ints are JS integers (emitted as untyped decimal strings in XML-RPC), floats are wrapped in
 * XFloat (emitted as <double> with %.16g), datetimes are Date objects, maps are plain objects.
 */
export class XFloat {
  constructor(readonly value: number) {}
}
/** An int that XAPI emits as `<i4>` (only event.from's valid_ref_counts). */
export class XInt32 {
  constructor(readonly value: number) {}
}
export type XValue =
  | string
  | number
  | boolean
  | Date
  | XFloat
  | XInt32
  | XValue[]
  | { [key: string]: XValue };
export type XRecord = { [key: string]: XValue };

export const NULL_REF = 'OpaqueRef:NULL';
export const EPOCH = new Date(0);

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** ISO-8601 basic date with extended time, UTC: `20250319T04:16:24Z`. */
export function formatDateTime(d: Date): string {
  return (
    `${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`
  );
}

/** Accepts the basic form (what XAPI emits) and RFC 3339; a value without zone is UTC. */
export function parseDateTime(s: string): Date | undefined {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(s);
  if (!m) return undefined;
  const zone = m[7] && m[7] !== 'Z' ? m[7].replace(/^([+-]\d{2})(\d{2})$/, '$1:$2') : 'Z';
  const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${zone}`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** C's `%.16g`. */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(16)))));
  if (exp < -4 || exp >= 16) {
    const [mant = '', e = '0'] = x.toExponential(15).split('e');
    const m = mant.includes('.') ? mant.replace(/\.?0+$/, '') : mant;
    const en = Number(e);
    return `${m}e${en < 0 ? '-' : '+'}${pad(Math.abs(en))}`;
  }
  const fixed = x.toFixed(Math.max(0, 15 - exp));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

/** XAPI's string escaping: & < > " escaped, control chars other than TAB/LF/CR dropped. */
export function escapeXml(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: dropping control characters is the point
  return s.replace(/[&<>"\x00-\x08\x0b\x0c\x0e-\x1f]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '';
    }
  });
}

export function xmlValue(v: XValue, out: string[]): void {
  if (typeof v === 'string') out.push('<value>', escapeXml(v), '</value>');
  else if (typeof v === 'number') out.push('<value>', String(Math.trunc(v)), '</value>');
  else if (typeof v === 'boolean') out.push('<value><boolean>', v ? '1' : '0', '</boolean></value>');
  else if (v instanceof Date)
    out.push('<value><dateTime.iso8601>', formatDateTime(v), '</dateTime.iso8601></value>');
  else if (v instanceof XFloat) out.push('<value><double>', formatDouble(v.value), '</double></value>');
  else if (v instanceof XInt32) out.push('<value><i4>', String(v.value), '</i4></value>');
  else if (Array.isArray(v)) {
    out.push('<value><array><data>');
    for (const x of v) xmlValue(x, out);
    out.push('</data></array></value>');
  } else {
    out.push('<value><struct>');
    for (const [k, x] of Object.entries(v)) {
      // XAPI writes member names unescaped (rpc xmlrpc.ml add_member)
      out.push('<member><name>', k, '</name>');
      xmlValue(x, out);
      out.push('</member>');
    }
    out.push('</struct></value>');
  }
}

export function toXmlString(v: XValue): string {
  const out: string[] = [];
  xmlValue(v, out);
  return out.join('');
}

export function xmlResponse(ok: boolean, v: XValue): string {
  const body: XRecord = ok ? { Status: 'Success', Value: v } : { Status: 'Failure', ErrorDescription: v };
  const out: string[] = ['<?xml version="1.0"?><methodResponse><params><param>'];
  xmlValue(body, out);
  out.push('</param></params></methodResponse>');
  return out.join('');
}

/** The JSON-RPC form of a value (ints as numbers, datetimes as the same basic-format string). */
export function jsonValue(v: XValue): unknown {
  if (v instanceof Date) return formatDateTime(v);
  if (v instanceof XFloat || v instanceof XInt32) return v.value;
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = jsonValue(x);
    return o;
  }
  return v;
}

/** A deep copy (records handed out must not alias the store). */
export function cloneValue<T extends XValue>(v: T): T {
  if (Array.isArray(v)) return v.map(cloneValue) as T;
  if (v instanceof Date || v instanceof XFloat || v instanceof XInt32) return v;
  if (v !== null && typeof v === 'object') {
    const o: XRecord = {};
    for (const [k, x] of Object.entries(v)) o[k] = cloneValue(x);
    return o as T;
  }
  return v;
}
