/** The messages XAPI generates for every class: getters, setters, map/set helpers, get_all... */
import { XapiError } from '../errors.js';
import { CLASSES, type ClassName, CONSTRUCTOR_CLASSES, type FieldSpec, SCHEMA } from '../schema.js';
import type { PoolState } from '../state.js';
import { cloneValue, type XRecord, type XValue } from '../wire/values.js';
import { type ParamType, p, type Registry, unmarshal } from './registry.js';

const PTYPE: Record<FieldSpec['t'], ParamType> = {
  string: 'string',
  int: 'int',
  float: 'float',
  bool: 'bool',
  datetime: 'datetime',
  ref: 'ref',
  refs: 'refs',
  strings: 'strings',
  map: 'map',
};

/** `self` must be a live object of `cls`. */
export function self(pool: PoolState, cls: ClassName, ref: XValue | undefined): string {
  const r = String(ref);
  pool.db.get(cls, r);
  return r;
}

/** Build a record for `C.create`: required fields must be present; values are typed per the schema. */
export function constructorFields(cls: ClassName, rec: XRecord): XRecord {
  const out: XRecord = {};
  for (const [k, f] of Object.entries(SCHEMA[cls])) {
    if (k in rec) {
      if (f.req || f.rw || f.ctor) out[k] = unmarshal(PTYPE[f.t], rec[k]);
    } else if (f.req) {
      throw new XapiError('INTERNAL_ERROR', [`Dispatcher_FieldNotFound("${k}")`]);
    }
  }
  return out;
}

function str(v: XValue): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

/** A small evaluator for get_all_records_where: field "f"="v", and, or, not, parentheses, true/false. */
export function whereFilter(expr: string): (rec: XRecord) => boolean {
  const toks = expr.match(/"(?:[^"\\]|\\.)*"|\(|\)|=|<>|[A-Za-z_]+/g) ?? [];
  let pos = 0;
  const peek = (): string | undefined => toks[pos];
  const unq = (t: string | undefined): string => (t ?? '').replace(/^"|"$/g, '').replace(/\\(.)/g, '$1');
  type F = (r: XRecord) => boolean;
  const atom = (): F => {
    const t = toks[pos++];
    if (t === '(') {
      const e = or();
      pos++;
      return e;
    }
    if (t === 'not') {
      const e = atom();
      return (r) => !e(r);
    }
    if (t === 'true') return () => true;
    if (t === 'false') return () => false;
    if (t === 'field') {
      const f = unq(toks[pos++]);
      const op = toks[pos++];
      const v = unq(toks[pos++]);
      return op === '<>'
        ? (r) => r[f] === undefined || str(r[f]!) !== v
        : (r) => r[f] !== undefined && str(r[f]!) === v;
    }
    throw new XapiError('INTERNAL_ERROR', [`Cannot parse expression: ${expr}`]);
  };
  const and = (): F => {
    let l = atom();
    while (peek() === 'and') {
      pos++;
      const a = l;
      const b = atom();
      l = (r) => a(r) && b(r);
    }
    return l;
  };
  const or = (): F => {
    let l = and();
    while (peek() === 'or') {
      pos++;
      const a = l;
      const b = and();
      l = (r) => a(r) || b(r);
    }
    return l;
  };
  if (toks.length === 0) return () => true;
  return or();
}

export function registerImplicit(reg: Registry): void {
  for (const cls of CLASSES) {
    const fields = SCHEMA[cls];
    const secret = cls === 'session';
    if (!secret) {
      reg.add({ name: `${cls}.get_all`, params: [], handler: ({ pool }) => pool.objectsOf(cls) });
      reg.add({
        name: `${cls}.get_all_records`,
        params: [],
        handler: ({ pool }) => Object.fromEntries(pool.db.all(cls).map(([r, rec]) => [r, cloneValue(rec)])),
      });
      reg.add({
        name: `${cls}.get_all_records_where`,
        params: [p('expr', 'string')],
        handler: ({ pool }, [expr]) => {
          const f = whereFilter(String(expr));
          return Object.fromEntries(
            pool.db
              .all(cls)
              .filter(([, rec]) => f(rec))
              .map(([r, rec]) => [r, cloneValue(rec)]),
          );
        },
      });
    }
    reg.add({
      name: `${cls}.get_record`,
      params: [p('self', 'ref')],
      handler: ({ pool }, [ref]) => pool.db.record(cls, String(ref)),
    });
    reg.add({
      name: `${cls}.get_by_uuid`,
      params: [p('uuid', 'string')],
      handler: ({ pool }, [uuid]) => pool.db.byUuid(cls, String(uuid)),
    });
    if ('name_label' in fields && !secret) {
      reg.add({
        name: `${cls}.get_by_name_label`,
        params: [p('label', 'string')],
        handler: ({ pool }, [label]) => {
          // xapi scans the table too; without copying it first, a lookup in 8,000 VMs stays cheap
          const refs: string[] = [];
          for (const [ref, r] of pool.db.table(cls)) if (r.name_label === label) refs.push(ref);
          return refs;
        },
      });
    }
    for (const [field, spec] of Object.entries(fields)) {
      reg.add({
        name: `${cls}.get_${field}`,
        params: [p('self', 'ref')],
        handler: ({ pool }, [ref]) => cloneValue(pool.db.get(cls, String(ref))[field]!),
      });
      if (!spec.rw) continue;
      reg.add({
        name: `${cls}.set_${field}`,
        params: [p('self', 'ref'), p('value', PTYPE[spec.t])],
        handler: ({ pool }, [ref, value]) => {
          pool.db.set(cls, self(pool, cls, ref), field, value!);
          return undefined;
        },
      });
      if (spec.t === 'map') {
        reg.add({
          name: `${cls}.add_to_${field}`,
          params: [p('self', 'ref'), p('key', 'string'), p('value', 'string')],
          handler: ({ pool }, [ref, key, value]) => {
            const r = self(pool, cls, ref);
            const m = pool.db.get(cls, r)[field] as XRecord;
            if (String(key) in m) throw new XapiError('MAP_DUPLICATE_KEY', [cls, field, r, String(key)]);
            pool.db.set(cls, r, field, { ...m, [String(key)]: value! });
            return undefined;
          },
        });
        reg.add({
          name: `${cls}.remove_from_${field}`,
          params: [p('self', 'ref'), p('key', 'string')],
          handler: ({ pool }, [ref, key]) => {
            const r = self(pool, cls, ref);
            const m = { ...(pool.db.get(cls, r)[field] as XRecord) };
            delete m[String(key)];
            pool.db.set(cls, r, field, m);
            return undefined;
          },
        });
      }
      if (spec.t === 'strings' || spec.t === 'refs') {
        reg.add({
          name: `${cls}.add_${field}`,
          params: [p('self', 'ref'), p('value', 'string')],
          handler: ({ pool }, [ref, value]) => {
            const r = self(pool, cls, ref);
            const cur = pool.db.get(cls, r)[field] as string[];
            if (!cur.includes(String(value))) pool.db.set(cls, r, field, [...cur, String(value)]);
            return undefined;
          },
        });
        reg.add({
          name: `${cls}.remove_${field}`,
          params: [p('self', 'ref'), p('value', 'string')],
          handler: ({ pool }, [ref, value]) => {
            const r = self(pool, cls, ref);
            const cur = pool.db.get(cls, r)[field] as string[];
            pool.db.set(
              cls,
              r,
              field,
              cur.filter((x) => x !== String(value)),
            );
            return undefined;
          },
        });
      }
    }
    if (CONSTRUCTOR_CLASSES.includes(cls)) {
      reg.add({
        name: `${cls}.create`,
        params: [p('args', 'record')],
        async: true,
        handler: ({ pool }, [rec]) => pool.db.create(cls, constructorFields(cls, rec as XRecord)),
      });
      reg.add({
        name: `${cls}.destroy`,
        params: [p('self', 'ref')],
        async: true,
        handler: ({ pool }, [ref]) => {
          pool.db.destroy(cls, self(pool, cls, ref));
          return undefined;
        },
      });
    }
  }
}
