/**
 * HTTP dispatch as xapi's http_svr does it: one table per method, and a request goes to the
 * registered path that is the longest *character* prefix of its (percent-decoded) path — so
 * `/export_raw_vdi/` (Xen Orchestra's spelling) and `/export_raw_vdi.vhd` reach the
 * `/export_raw_vdi` handler, and `/import_raw_vdi` beats a shorter `/import`. A method with a
 * table but no matching entry gets 403 Forbidden (xapi's default callback); a method with no
 * table at all gets 501. `GET /` and `POST /` are registered by the caller (xapi's static file
 * server and XML-RPC), which is why unknown GET paths answer 404 and unknown POST paths are XML-RPC.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export type Route =
  | { kind: 'handler'; path: string; handler: Handler }
  | { kind: 'forbidden' }
  | { kind: 'not-implemented' };

export class Router {
  private readonly tables = new Map<string, Map<string, Handler>>();

  add(method: string, path: string, handler: Handler): this {
    const table = this.tables.get(method) ?? new Map<string, Handler>();
    this.tables.set(method, table.set(path, handler));
    return this;
  }

  /** The route for a request path (without the query). */
  find(method: string, path: string): Route {
    const table = this.tables.get(method);
    if (!table) return { kind: 'not-implemented' };
    let best: string | undefined;
    for (const p of table.keys())
      if (path.startsWith(p) && (best === undefined || p.length > best.length)) best = p;
    return best === undefined
      ? { kind: 'forbidden' }
      : { kind: 'handler', path: best, handler: table.get(best)! };
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const route = this.find(req.method ?? 'GET', requestPath(req.url));
    if (route.kind === 'handler') {
      route.handler(req, res);
      return;
    }
    req.resume();
    const [status, title] = route.kind === 'forbidden' ? [403, 'Forbidden'] : [501, 'Method Not Implemented'];
    const body = `<html><body><h1>HTTP ${status} ${title}</h1></body></html>`;
    res.writeHead(status, {
      'content-type': 'text/html',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  }
}

/** The decoded path of a request target; an undecodable one is matched as sent. */
export function requestPath(url: string | undefined): string {
  const raw = (url ?? '/').split('?')[0] || '/';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
