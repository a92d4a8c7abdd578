/** The RPC endpoints: XML-RPC on any POST path, JSON-RPC 1.0/2.0 on POST /jsonrpc. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type { Registry } from '../api/registry.js';
import { dispatch } from '../dispatch.js';
import type { PoolState } from '../state.js';
import { escapeXml, jsonValue, xmlResponse } from '../wire/values.js';

const MAX_RPC_BODY = 300 * 1024;

interface XmlDeserializer {
  deserializeMethodCall(
    s: Readable,
    cb: (err: Error | null, method: string, params: unknown[]) => void,
  ): void;
}
const require = createRequire(import.meta.url);
const Deserializer = require('xmlrpc/lib/deserializer.js') as new () => XmlDeserializer;

export function parseXmlCall(body: string): Promise<{ method: string; params: unknown[] }> {
  return new Promise((resolve, reject) => {
    new Deserializer().deserializeMethodCall(Readable.from([Buffer.from(body)]), (err, method, params) => {
      if (err) reject(err);
      else resolve({ method, params: params ?? [] });
    });
  });
}

/** XAPI's reply to a request it cannot parse: HTTP 500 with an HTML body. */
export function http500(res: ServerResponse, info: string): void {
  const body =
    '<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try ' +
    'again. If the problem persists, please contact your support representative.<h1> Additional information </h1>' +
    `${escapeXml(info)}</body></html>`;
  res.writeHead(500, {
    'content-type': 'text/html',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

async function readBody(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
  const len = req.headers['content-length'];
  if (len === undefined || req.headers['transfer-encoding']) {
    http500(res, 'Content-Length required');
    req.resume();
    return undefined;
  }
  if (Number(len) > MAX_RPC_BODY) {
    http500(res, 'Request body too large');
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, type: string, body: string): void {
  res.writeHead(200, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'access-control-allow-origin': '*',
  });
  res.end(body);
}

export async function handleXmlRpc(
  reg: Registry,
  pool: PoolState,
  host: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = await readBody(req, res);
  if (body === undefined) return;
  let call: { method: string; params: unknown[] };
  try {
    call = await parseXmlCall(body);
  } catch (e) {
    http500(res, e instanceof Error ? e.message : String(e));
    return;
  }
  const out = await dispatch(reg, pool, host, call.method, call.params);
  send(res, 'text/xml', out.ok ? xmlResponse(true, out.value) : xmlResponse(false, out.error));
}

export async function handleJsonRpc(
  reg: Registry,
  pool: PoolState,
  host: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const body = await readBody(req, res);
  if (body === undefined) return;
  let msg: { method?: unknown; params?: unknown; id?: unknown; jsonrpc?: unknown };
  try {
    msg = JSON.parse(body) as typeof msg;
  } catch (e) {
    http500(res, e instanceof Error ? e.message : String(e));
    return;
  }
  if (
    !msg ||
    typeof msg.method !== 'string' ||
    !Array.isArray(msg.params) ||
    msg.id === undefined ||
    msg.id === null
  ) {
    http500(res, 'Invalid JSON-RPC request');
    return;
  }
  const v2 = msg.jsonrpc === '2.0';
  const out = await dispatch(reg, pool, host, msg.method, msg.params);
  let reply: unknown;
  if (v2) {
    reply = out.ok
      ? { jsonrpc: '2.0', result: jsonValue(out.value), id: msg.id }
      : { jsonrpc: '2.0', error: { code: 1, message: out.error[0], data: out.error.slice(1) }, id: msg.id };
  } else {
    reply = out.ok
      ? { result: jsonValue(out.value), error: null, id: msg.id }
      : { result: null, error: out.error, id: msg.id };
  }
  send(res, 'application/json', JSON.stringify(reply));
}
