import { KEY } from '../metadata.js';

/** Newest first by the run time stored under `xcr:time`; ties broken by uuid so the order is total. */
export function newestFirst(
  a: { uuid: string; other_config: Record<string, string> },
  b: { uuid: string; other_config: Record<string, string> },
): number {
  return (
    (b.other_config[KEY.time] ?? '').localeCompare(a.other_config[KEY.time] ?? '') ||
    a.uuid.localeCompare(b.uuid)
  );
}
