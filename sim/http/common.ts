/** What the HTTP data handlers share: auth, task, redirects, back-pressured writes (pacing: ../pace.ts). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';

export interface Transfer {
  query: URLSearchParams;
  session: string;
  task: string;
  /** a temporary session made from Basic credentials, logged out at the end */
  tempSession: boolean;
  /** the handler made the task (no task_id): like xapi's exec_with_new_task, it is destroyed at the end */
  ownTask: boolean;
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

export function param(req: IncomingMessage, query: URLSearchParams, name: string): string | undefined {
  return query.get(name) ?? cookie(req, name);
}

export function plain(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': 'text/html',
    'content-length': Buffer.byteLength(text),
    connection: 'close',
    ...headers,
  });
  res.end(text);
}

/** Authenticate (session_id or Basic) and find or create the task; undefined when a reply was sent. */
export function begin(
  pool: PoolState,
  hostIndex: number,
  label: string,
  req: IncomingMessage,
  res: ServerResponse,
): Transfer | undefined {
  const query = new URL(req.url ?? '/', 'http://x').searchParams;
  let session = param(req, query, 'session_id');
  let tempSession = false;
  if (!pool.validSession(session)) {
    session = undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [u, ...pw] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (u === pool.username && pw.join(':') === pool.password) {
        session = pool.login(hostIndex, 'http-basic');
        tempSession = true;
      }
    }
  }
  if (!session) {
    const given = param(req, query, 'task_id');
    if (given && pool.db.has('task', given))
      pool.failTask(given, new XapiError('SESSION_AUTHENTICATION_FAILED', []));
    req.resume();
    plain(res, 401, '<html><body><h1>HTTP 401 unauthorised</h1></body></html>', {
      'www-authenticate': 'Basic realm="xapi"',
    });
    return undefined;
  }
  const given = param(req, query, 'task_id');
  const ownTask = !(given && pool.db.has('task', given));
  const task = ownTask ? pool.createTask(label) : given!;
  return { query, session, task, tempSession, ownTask };
}

export function finish(pool: PoolState, t: Transfer): void {
  if (t.tempSession && pool.db.has('session', t.session)) pool.db.destroy('session', t.session);
  if (t.ownTask && pool.db.has('task', t.task)) pool.db.destroy('task', t.task);
}

/** Fail the task and reply with a bare status (errors before the 200). */
export function refuse(
  pool: PoolState,
  t: Transfer,
  res: ServerResponse,
  status: number,
  err: XapiError,
  req: IncomingMessage,
): void {
  pool.failTask(t.task, err);
  finish(pool, t);
  req.resume();
  plain(res, status, `<html><body><h1>HTTP ${status}</h1>${err.code}</body></html>`);
}

/** 302 to the host holding the SR when it is local to another host; true when redirected. */
export function redirectIfElsewhere(
  pool: PoolState,
  hostIndex: number,
  srRef: string,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const owner = pool.hostForSr(srRef);
  if (owner === undefined || owner === hostIndex) return false;
  req.resume();
  plain(res, 302, '', { location: `${pool.scheme}://${pool.hosts[owner]!.address}${req.url ?? '/'}` });
  return true;
}

/** The 200 a transfer starts with: written before any body byte moves. */
export function startOk(res: ServerResponse, task: string, headers: Record<string, string>): void {
  res.useChunkedEncodingByDefault = false;
  res.shouldKeepAlive = false;
  res.writeHead(200, {
    connection: 'close',
    'cache-control': 'no-cache, no-store',
    'task-id': task,
    ...headers,
  });
  res.flushHeaders();
}

/** Write with back-pressure; false if the peer went away. */
export function writeChunk(res: ServerResponse, chunk: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
