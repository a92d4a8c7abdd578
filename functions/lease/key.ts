import { createHash } from 'node:crypto';

const MAX_NAME = 120;

/**
 * A file name for a lease key: injective (distinct keys never share a name), portable and short.
 * Bytes outside [a-z0-9_-] become `%XX` (upper case letters too, so names stay distinct on
 * case-insensitive file systems); long keys keep a readable prefix plus a SHA-256 of the whole key
 * (`~` cannot appear in an escaped name, so the two forms never meet).
 */
export function leaseDirName(key: string): string {
  const escaped = Array.from(Buffer.from(key, 'utf8'), (b) => {
    const c = String.fromCharCode(b);
    return /[a-z0-9_-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
  const name =
    escaped.length <= MAX_NAME
      ? escaped
      : `${escaped.slice(0, 48)}~${createHash('sha256').update(key, 'utf8').digest('hex')}`;
  return `${name}.lease`;
}
