/**
 * A tiny XAPI stand-in for unit tests: a real HTTP(S) server on 127.0.0.1 that writes responses the
 * way xapi does (§1.2/1.3: untyped strings, ints as decimal strings, Status first, no whitespace),
 * with sessions, tasks, Async.* and event.from. Methods are plain handlers; throw `Fault` to fail.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';

const require = createRequire(import.meta.url);
const Deserializer = require('xmlrpc/lib/deserializer.js') as new () => {
  deserializeMethodCall(
    s: Readable,
    cb: (err: Error | null, method: string, params: unknown[]) => void,
  ): void;
};

export class Fault {
  constructor(readonly description: string[]) {}
}
/** A float, emitted as `<double>` (plain numbers are emitted as xapi emits ints: strings). */
export class Dbl {
  constructor(readonly n: number) {}
}

export const PASSWORD = 'pw-Sekr3t-42';
export const USER = 'root';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
function xapiDate(d: Date): string {
  const i = d.toISOString();
  return `${i.slice(0, 4)}${i.slice(5, 7)}${i.slice(8, 10)}T${i.slice(11, 19)}Z`;
}

/** A value as xapi writes it in XML-RPC. */
export function xmlValue(v: unknown): string {
  if (typeof v === 'string') return `<value>${esc(v)}</value>`;
  if (typeof v === 'number' || typeof v === 'bigint') return `<value>${v}</value>`;
  if (typeof v === 'boolean') return `<value><boolean>${v ? 1 : 0}</boolean></value>`;
  if (v instanceof Dbl) return `<value><double>${v.n}</double></value>`;
  if (v instanceof Date) return `<value><dateTime.iso8601>${xapiDate(v)}</dateTime.iso8601></value>`;
  if (Array.isArray(v)) return `<value><array><data>${v.map(xmlValue).join('')}</data></array></value>`;
  if (v === undefined || v === null) return '<value></value>';
  const members = Object.entries(v as Record<string, unknown>)
    .map(([k, x]) => `<member><name>${esc(k)}</name>${xmlValue(x)}</member>`)
    .join('');
  return `<value><struct>${members}</struct></value>`;
}

function jsonValue(v: unknown): unknown {
  if (v instanceof Dbl) return v.n;
  if (v instanceof Date) return xapiDate(v);
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonValue(x)]));
  return v ?? '';
}

export function xmlResponse(outcome: { value: unknown } | { error: string[] }): string {
  const body =
    'value' in outcome
      ? `<member><name>Status</name><value>Success</value></member><member><name>Value</name>${xmlValue(outcome.value)}</member>`
      : `<member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>${xmlValue(outcome.error)}</member>`;
  return `<?xml version="1.0"?><methodResponse><params><param><value><struct>${body}</struct></value></param></params></methodResponse>`;
}

export interface Task {
  uuid: string;
  name_label: string;
  status: string;
  progress: Dbl;
  result: string;
  error_info: string[];
  created: Date;
  finished: Date;
  other_config: Record<string, string>;
}

export interface Call {
  method: string;
  params: unknown[];
  raw: string;
  path: string;
}

type Handler = (params: unknown[]) => unknown;
type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface FakeXapi {
  url: string;
  address: string;
  server: Server;
  calls: Call[];
  methods: Map<string, Handler>;
  sessions: Set<string>;
  tasks: Map<string, Task>;
  routes: Route[];
  /** JSON-RPC reply flavour. */
  jsonVersion: 'v1' | 'v2';
  /** when set, login answers HOST_IS_SLAVE [masterAddress] and every other call too */
  slaveOf?: string;
  finishTask(ref: string, outcome: { result?: string } | { error: string[] }): void;
  /** delay before Async handlers run */
  asyncDelayMs: number;
  close(): Promise<void>;
}

let counter = 0;
const uid = () => `${(++counter).toString(16).padStart(8, '0')}-0000-4000-8000-000000000000`;

export async function startFake(opts: { tls?: { cert: string; key: string } } = {}): Promise<FakeXapi> {
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const fake: FakeXapi = {
    url: '',
    address: '',
    server: undefined as unknown as Server,
    calls: [],
    methods: new Map(),
    sessions: new Set(),
    tasks: new Map(),
    routes: [],
    jsonVersion: 'v2',
    asyncDelayMs: 5,
    finishTask(ref, outcome) {
      const t = fake.tasks.get(ref);
      if (!t) return;
      t.progress = new Dbl(1);
      t.finished = new Date();
      if ('error' in outcome) {
        t.status = outcome.error[0] === 'TASK_CANCELLED' ? 'cancelled' : 'failure';
        t.error_info = outcome.error;
      } else {
        t.status = 'success';
        t.result = outcome.result ?? '';
      }
      notify();
    },
    async close() {
      fake.server.closeAllConnections?.();
      await new Promise<void>((r) => fake.server.close(() => r()));
    },
  };
  const taskOf = (ref: unknown): Task => {
    const t = typeof ref === 'string' ? fake.tasks.get(ref) : undefined;
    if (!t) throw new Fault(['HANDLE_INVALID', 'task', String(ref)]);
    return t;
  };
  const newTask = (label: string): string => {
    const ref = `OpaqueRef:${uid()}`;
    fake.tasks.set(ref, {
      uuid: uid(),
      name_label: label,
      status: 'pending',
      progress: new Dbl(0),
      result: '',
      error_info: [],
      created: new Date(),
      finished: new Date(0),
      other_config: {},
    });
    return ref;
  };
  const m = fake.methods;
  m.set('session.logout', () => '');
  m.set('task.create', (p) => newTask(String(p[0])));
  m.set('task.get_record', (p) => taskOf(p[0]));
  m.set('task.destroy', (p) => {
    taskOf(p[0]);
    fake.tasks.delete(String(p[0]));
    notify();
    return '';
  });
  m.set('task.cancel', (p) => {
    const t = taskOf(p[0]);
    if (t.status === 'pending') fake.finishTask(String(p[0]), { error: ['TASK_CANCELLED', String(p[0])] });
    return '';
  });
  m.set('event.from', async (p) => {
    const [classes, , timeout] = p as [string[], string, number];
    const ref = classes[0]?.replace(/^task\//, '') ?? '';
    const snapshot = () => {
      const t = fake.tasks.get(ref);
      return t ? [{ id: '1', timestamp: '0.0', class: 'task', operation: 'mod', ref, snapshot: t }] : [];
    };
    const t = fake.tasks.get(ref);
    if (t && t.status === 'pending') {
      await new Promise<void>((resolve) => {
        const w = () => {
          waiters.delete(w);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(w, Number(timeout) * 1000);
        waiters.add(w);
      });
    }
    return { events: snapshot(), valid_ref_counts: {}, token: String(Date.now()) };
  });

  const dispatch = async (
    method: string,
    params: unknown[],
  ): Promise<{ value: unknown } | { error: string[] }> => {
    try {
      if (method === 'session.login_with_password') {
        if (fake.slaveOf) return { error: ['HOST_IS_SLAVE', fake.slaveOf] };
        if (params[0] !== USER || params[1] !== PASSWORD) {
          return { error: ['SESSION_AUTHENTICATION_FAILED', String(params[0]), 'Authentication failure'] };
        }
        const s = `OpaqueRef:${uid()}`;
        fake.sessions.add(s);
        return { value: s };
      }
      if (fake.slaveOf) return { error: ['HOST_IS_SLAVE', fake.slaveOf] };
      const [session, ...rest] = params;
      if (typeof session !== 'string' || !fake.sessions.has(session)) {
        return { error: ['SESSION_INVALID', String(session)] };
      }
      if (method.startsWith('Async.')) {
        const h = m.get(method.slice(6));
        if (!h) return { error: ['MESSAGE_METHOD_UNKNOWN', method] };
        const ref = newTask(method);
        setTimeout(async () => {
          try {
            const v = await h(rest);
            fake.finishTask(ref, { result: xmlValue(v) });
          } catch (e) {
            fake.finishTask(ref, {
              error: e instanceof Fault ? e.description : ['INTERNAL_ERROR', String(e)],
            });
          }
        }, fake.asyncDelayMs);
        return { value: ref };
      }
      const h = m.get(method);
      if (!h) return { error: ['MESSAGE_METHOD_UNKNOWN', method] };
      return { value: await h(rest) };
    } catch (e) {
      if (e instanceof Fault) return { error: e.description };
      return { error: ['INTERNAL_ERROR', String(e)] };
    }
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    serve(req, res).catch(() => res.destroy()); // a client that went away mid-request
  };
  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    for (const r of fake.routes) if (await r(req, res, url)) return;
    if (req.method !== 'POST') {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    if (url.pathname === '/jsonrpc') {
      const { method, params, id } = JSON.parse(raw) as { method: string; params: unknown[]; id: number };
      fake.calls.push({ method, params, raw, path: url.pathname });
      const out = await dispatch(method, params);
      const body =
        fake.jsonVersion === 'v1'
          ? 'value' in out
            ? { result: jsonValue(out.value), error: null, id }
            : { result: null, error: out.error, id }
          : 'value' in out
            ? { jsonrpc: '2.0', result: jsonValue(out.value), id }
            : { jsonrpc: '2.0', error: { code: 1, message: out.error[0], data: out.error.slice(1) }, id };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    const { method, params } = await new Promise<{ method: string; params: unknown[] }>((resolve, reject) =>
      new Deserializer().deserializeMethodCall(Readable.from([raw]), (err, method, params) =>
        err ? reject(err) : resolve({ method, params }),
      ),
    ).catch(() => ({ method: '', params: [] }));
    if (!method) {
      res
        .writeHead(500, { 'content-type': 'text/html' })
        .end('<html><body><h1>HTTP 500 internal server error</h1>');
      return;
    }
    fake.calls.push({ method, params, raw, path: url.pathname });
    const out = await dispatch(method, params);
    res.writeHead(200, { 'content-type': 'text/xml' }).end(xmlResponse(out));
  };
  const server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler)
    : createServer(handler);
  fake.server = server;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  fake.address = `127.0.0.1:${port}`;
  fake.url = `${opts.tls ? 'https' : 'http'}://${fake.address}`;
  return fake;
}

/** Names of the methods called so far. */
export const methodsCalled = (f: FakeXapi): string[] => f.calls.map((c) => c.method);
