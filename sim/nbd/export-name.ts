/**
 * Splits an xapi-nbd export name (`/<vdi-uuid>?session_id=<ref>`, as `VDI.get_nbd_info` builds it)
 * the way xapi-nbd's main.ml reads it with `Uri.of_string`: path minus the leading '/', and the
 * `session_id` query parameter. Returns undefined when either part is missing.
 */
export function parseXapiExportName(name: string): { vdiUuid: string; sessionId: string } | undefined {
  let url: URL;
  try {
    url = new URL(name, 'nbd://xapi-nbd');
  } catch {
    return undefined;
  }
  const vdiUuid = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const sessionId = url.searchParams.get('session_id');
  if (!vdiUuid || !sessionId) return undefined;
  return { vdiUuid, sessionId };
}
