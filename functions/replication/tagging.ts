import type { Xapi, XapiRecords } from '../xapi/index.js';
import type { OtherConfig } from './metadata.js';

/** Adds/overwrites keys of an object's other_config in one call (we own the object). */
export async function mergeOtherConfig(
  xapi: Xapi,
  cls: keyof XapiRecords,
  ref: string,
  current: OtherConfig,
  keys: OtherConfig,
): Promise<void> {
  await xapi.call(`${String(cls)}.set_other_config`, ref, { ...current, ...keys });
}

/** Newest first, by the ISO time stored under `xcr:time`. */
export function byTimeDesc<T extends { rec: { other_config: OtherConfig } }>(key: string) {
  return (a: T, b: T) => (b.rec.other_config[key] ?? '').localeCompare(a.rec.other_config[key] ?? '');
}
