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
