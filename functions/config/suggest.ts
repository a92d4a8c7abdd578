import type { z } from 'zod';

type Def = {
  type: string;
  shape?: Record<string, unknown>;
  innerType?: unknown;
  in?: unknown;
  valueType?: unknown;
  element?: unknown;
  options?: unknown[];
};
const defOf = (s: unknown): Def | undefined => (s as { _zod?: { def?: Def } })?._zod?.def;

/** The object keys a schema accepts at `path` (through optional/default/pipe/record/array/union). */
export function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const keys = new Set<string>();
  const visit = (s: unknown, rest: readonly PropertyKey[]): void => {
    const def = defOf(s);
    if (!def) return;
    if (def.innerType) visit(def.innerType, rest);
    else if (def.type === 'pipe') visit(def.in, rest);
    else if (def.type === 'union') for (const o of def.options ?? []) visit(o, rest);
    else if (rest.length === 0) {
      if (def.type === 'object') for (const k of Object.keys(def.shape ?? {})) keys.add(k);
    } else {
      const [head, ...tail] = rest;
      if (def.type === 'object') visit(def.shape?.[String(head)], tail);
      else if (def.type === 'record') visit(def.valueType, tail);
      else if (def.type === 'array') visit(def.element, tail);
    }
  };
  visit(schema, path);
  return [...keys];
}

/** Levenshtein distance, ignoring letter case. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(
        row[j]! + 1,
        row[j - 1]! + 1,
        prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1),
      );
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The known key closest to a misspelt one, if any is close enough to be what was meant. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}
