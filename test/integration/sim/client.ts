/**
 * A minimal test-side XAPI client (independent of functions/xapi, which is tested against the
 * simulator): raw XML-RPC / JSON-RPC over fetch, with the response parsed by the xmlrpc package.
 */
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

interface XmlDeserializer {
  deserializeMethodResponse(s: Readable, cb: (err: Error | null, value: unknown) => void): void;
}
const require = createRequire(import.meta.url);
const Deserializer = require('xmlrpc/lib/deserializer.js') as new () => XmlDeserializer;
const Serializer = require('xmlrpc/lib/serializer.js') as {
  serializeMethodCall(m: string, p: unknown[]): string;
};

export type Outcome =
  | { Status: 'Success'; Value: unknown }
  | { Status: 'Failure'; ErrorDescription: string[] };

export function parseResponse(xml: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    new Deserializer().deserializeMethodResponse(Readable.from([Buffer.from(xml)]), (err, v) =>
      err ? reject(err) : resolve(v as Outcome),
    );
  });
}

export async function rawXml(
  url: string,
  method: string,
  params: unknown[],
): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url, {
    method: 'POST',
    body: Serializer.serializeMethodCall(method, params),
    headers: { 'content-type': 'text/xml' },
  });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

export async function xml(url: string, method: string, params: unknown[]): Promise<Outcome> {
  const r = await rawXml(url, method, params);
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body}`);
  return parseResponse(r.body);
}

export class XapiFailure extends Error {
  constructor(readonly description: string[]) {
    super(description.join(' '));
  }
}

/** A logged-in session on a URL, calling with XML-RPC and throwing XapiFailure on failures. */
export class TestSession {
  constructor(
    readonly url: string,
    readonly ref: string,
  ) {}

  static async login(url: string, user: string, password: string): Promise<TestSession> {
    const r = await xml(url, 'session.login_with_password', [user, password, '1.0', 'test']);
    if (r.Status !== 'Success') throw new XapiFailure(r.ErrorDescription);
    return new TestSession(url, r.Value as string);
  }

  async call<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    const r = await xml(this.url, method, [this.ref, ...params]);
    if (r.Status !== 'Success') throw new XapiFailure(r.ErrorDescription);
    return r.Value as T;
  }

  /** The ErrorDescription of a call expected to fail. */
  async failure(method: string, ...params: unknown[]): Promise<string[]> {
    const r = await xml(this.url, method, [this.ref, ...params]);
    if (r.Status === 'Success')
      throw new Error(`${method} unexpectedly succeeded: ${JSON.stringify(r.Value)}`);
    return r.ErrorDescription;
  }

  /** Poll a task until it leaves pending; returns its record. */
  async waitTask(task: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const rec = await this.call<Record<string, unknown>>('task.get_record', task);
      if (rec.status !== 'pending') return rec;
      if (Date.now() > end) throw new Error(`task ${task} still pending`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Run Async.<method>, wait, return the ref parsed from the XML result (or throw the task's error). */
  async async(method: string, ...params: unknown[]): Promise<string> {
    const task = await this.call<string>(`Async.${method}`, ...params);
    const rec = await this.waitTask(task);
    await this.call('task.destroy', task);
    if (rec.status !== 'success') throw new XapiFailure(rec.error_info as string[]);
    return /^<value>(.*)<\/value>$/.exec(String(rec.result))?.[1] ?? '';
  }
}

export async function json(
  url: string,
  body: unknown,
): Promise<{ status: number; type: string | null; body: unknown }> {
  const res = await fetch(`${url}/jsonrpc`, { method: 'POST', body: JSON.stringify(body) });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    body: res.status === 200 ? JSON.parse(text) : text,
  };
}
