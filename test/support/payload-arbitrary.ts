import fc from 'fast-check';
import type { z } from 'zod';

type Def = {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  entries?: Record<string, string>;
  options?: z.ZodType[];
};

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/**
 * Arbitrary values of a payload schema, built from the schema itself (objects, arrays, enums,
 * unions, optional keys, strings, counts, booleans), so a field added to a payload is generated
 * without touching the test. Values that the schema's refinements reject are filtered out.
 */
export function arbitraryOf<S extends z.ZodType>(schema: S): fc.Arbitrary<z.output<S>> {
  return build(schema).filter((v) => schema.safeParse(v).success) as fc.Arbitrary<z.output<S>>;
}

function build(schema: z.ZodType): fc.Arbitrary<unknown> {
  const def = defOf(schema);
  switch (def.type) {
    case 'string':
      return fc.string({ minLength: 1, maxLength: 12 });
    case 'number':
      return fc.nat({ max: 2 ** 48 });
    case 'boolean':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...Object.values(def.entries!));
    case 'array':
      return fc.array(build(def.element!), { maxLength: 3 });
    case 'union':
      return fc.oneof(...def.options!.map(build));
    case 'object': {
      const required: Record<string, fc.Arbitrary<unknown>> = {};
      const optional: string[] = [];
      for (const [key, field] of Object.entries(def.shape!)) {
        const fieldDef = defOf(field);
        if (fieldDef.type === 'optional') {
          required[key] = build(fieldDef.innerType!);
          optional.push(key);
        } else required[key] = build(field);
      }
      return fc.record(required, {
        requiredKeys: Object.keys(required).filter((k) => !optional.includes(k)),
      });
    }
    default:
      throw new Error(`no arbitrary for zod type "${def.type}": extend test/support/payload-arbitrary.ts`);
  }
}
