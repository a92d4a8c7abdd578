/** Method definitions: parameters (with defaults), async capability and the handler. */
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import { parseDateTime, type XRecord, type XValue } from '../wire/values.js';

export type ParamType =
  | 'string'
  | 'int'
  | 'float'
  | 'bool'
  | 'ref'
  | 'refs'
  | 'strings'
  | 'map'
  | 'record'
  | 'datetime'
  | 'any';
export interface ParamDef {
  name: string;
  t: ParamType;
  /** has a server-side default: may be omitted */
  def?: XValue;
}
export interface CallCtx {
  pool: PoolState;
  session: string;
  hostIndex: number;
  /** set when running as Async.*: the task the result goes to */
  task?: string;
}
export type Handler = (ctx: CallCtx, args: XValue[]) => XValue | undefined | Promise<XValue | undefined>;
export interface MethodDef {
  name: string;
  params: ParamDef[];
  handler: Handler;
  async?: boolean;
  /** false for the login calls */
  session?: boolean;
}

export class Registry {
  readonly methods = new Map<string, MethodDef>();
  add(def: MethodDef): void {
    this.methods.set(def.name, def);
  }
  get(name: string): MethodDef | undefined {
    return this.methods.get(name);
  }
}

/** Shorthand param spec: 'name:type' or 'name:type?' (defaulted, default given separately). */
export function p(name: string, t: ParamType, def?: XValue): ParamDef {
  return def === undefined ? { name, t } : { name, t, def };
}

const bad = (what: string, v: unknown): never => {
  throw new XapiError('INTERNAL_ERROR', [
    `Unmarshalling error: expected ${what}, got ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`,
  ]);
};

/** Convert a wire value to the parameter's type as XAPI's unmarshallers do. */
export function unmarshal(t: ParamType, v: unknown): XValue {
  switch (t) {
    case 'string':
    case 'ref':
      if (typeof v === 'string') return v;
      return bad('string', v);
    case 'int':
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
      return bad('int', v);
    case 'float':
      if (typeof v === 'number') return v;
      if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
      return bad('float', v);
    case 'bool':
      if (typeof v === 'boolean') return v;
      return bad('bool', v);
    case 'datetime':
      if (v instanceof Date) return v;
      if (typeof v === 'string') return parseDateTime(v) ?? bad('datetime', v);
      return bad('datetime', v);
    case 'refs':
    case 'strings':
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
      return bad('array of strings', v);
    case 'map':
      if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
        const out: XRecord = {};
        for (const [k, x] of Object.entries(v)) out[k] = typeof x === 'string' ? x : String(x);
        return out;
      }
      return bad('struct', v);
    case 'record':
      if (v && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) return v as XRecord;
      return bad('struct', v);
    default:
      return v as XValue;
  }
}
