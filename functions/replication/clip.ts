/** Cutting text for payloads, which Step Functions limits in bytes, not characters. */

const ELLIPSIS = '…';
/** UTF-8 bytes of a code point (a lone surrogate is encoded as U+FFFD: 3). */
const utf8Bytes = (cp: number) => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);

/**
 * `s` if it fits in `max` bytes of UTF-8, else its longest prefix of whole code points that fits
 * with the ellipsis after it (a surrogate pair is never split; a grapheme of several code points
 * may be). `max` is at least the ellipsis's 3 bytes.
 */
export function clipUtf8(s: string, max: number): string {
  let bytes = 0;
  let end = 0;
  let fits = 0;
  const room = max - utf8Bytes(ELLIPSIS.codePointAt(0)!);
  for (const ch of s) {
    bytes += utf8Bytes(ch.codePointAt(0)!);
    if (bytes > max) return `${s.slice(0, fits)}${ELLIPSIS}`;
    end += ch.length;
    if (bytes <= room) fits = end;
  }
  return s;
}
