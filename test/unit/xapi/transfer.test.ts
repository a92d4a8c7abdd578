import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, XapiError } from '../../../functions/xapi/index.js';
import { type FakeXapi, PASSWORD, startFake, USER } from '../../support/fake-xapi.js';

let master: FakeXapi;
let member: FakeXapi;
let x: Xapi;

/** What the fake data paths do in the current test. */
interface Behaviour {
  /** answer 302 to the member (which shares the master's sessions and tasks) */
  redirect?: boolean;
  body?: Buffer;
  /** export: write this many bytes then fail the task and cut the socket */
  cutAfter?: number;
  /** fail the task after a complete 200 exchange */
  failTask?: string[];
  /** export: body is an HTTP error response (xapi quirk) */
  httpInBody?: boolean;
  /** import: delay before reading each chunk (slow disk) */
  readDelayMs?: number;
}
let behaviour: Behaviour = {};
/** Bytes the export route has handed to its socket / the import route has read, for back-pressure checks. */
let exportWritten = 0;
let importReceived = 0;
const imports: {
  headers: IncomingMessage['headers'];
  query: URLSearchParams;
  host: string;
  sha: string;
  bytes: number;
}[] = [];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function dataRoutes(f: FakeXapi, isMember: boolean) {
  f.routes.push(async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    if (url.pathname !== '/export_raw_vdi' && url.pathname !== '/import_raw_vdi') return false;
    const q = url.searchParams;
    const task = q.get('task_id') ?? '';
    if (!master.sessions.has(q.get('session_id') ?? '')) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="xapi"' }).end();
      return true;
    }
    if (behaviour.redirect && !isMember) {
      res.writeHead(302, { location: `http://${member.address}${url.pathname}?${q}` }).end();
      return true;
    }
    if (url.pathname === '/export_raw_vdi') {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'task-id': task,
        connection: 'close',
      });
      if (behaviour.httpInBody) {
        res.end('HTTP/1.1 500 Internal Error\r\ncontent-length: 0\r\n\r\n');
        master.finishTask(task, { result: '' });
        return true;
      }
      const body = behaviour.body ?? Buffer.alloc(0);
      if (behaviour.cutAfter !== undefined) {
        res.write(body.subarray(0, behaviour.cutAfter));
        master.finishTask(task, { error: ['VDI_IO_ERROR', 'Device I/O errors'] });
        setTimeout(() => res.socket?.destroy(), 20);
        return true;
      }
      // Honour back-pressure like a real server: write 64 KiB at a time, waiting for 'drain'.
      for (let off = 0; off < body.length; off += 65536) {
        const ok = res.write(body.subarray(off, off + 65536));
        exportWritten = off + 65536;
        if (!ok) await new Promise((r) => res.once('drain', r));
      }
      res.end();
      master.finishTask(task, behaviour.failTask ? { error: behaviour.failTask } : { result: '' });
      return true;
    }
    // import
    const h = createHash('sha256');
    let bytes = 0;
    for await (const c of req) {
      h.update(c as Buffer);
      bytes += (c as Buffer).length;
      importReceived += (c as Buffer).length;
      if (behaviour.readDelayMs) await new Promise((r) => setTimeout(r, behaviour.readDelayMs));
    }
    imports.push({
      headers: req.headers,
      query: q,
      host: isMember ? 'member' : 'master',
      sha: h.digest('hex'),
      bytes,
    });
    res.writeHead(200, { 'task-id': task, connection: 'close' }).end();
    if (task) {
      master.finishTask(
        task,
        behaviour.failTask
          ? { error: behaviour.failTask }
          : { result: `<value>${q.get('vdi') ?? ''}</value>` },
      );
    }
    return true;
  });
}

beforeAll(async () => {
  master = await startFake();
  member = await startFake();
  // One pool: the member answers with the master's sessions and tasks.
  member.sessions = master.sessions;
  member.tasks = master.tasks;
  dataRoutes(master, false);
  dataRoutes(member, true);
  x = await Xapi.connect({
    url: master.url,
    username: USER,
    password: PASSWORD,
    allowPlainHttp: true,
    taskTimeoutMs: 5_000,
  });
});
afterEach(() => {
  behaviour = {};
  exportWritten = 0;
  importReceived = 0;
  imports.length = 0;
});
afterAll(async () => {
  await x.logout();
  await master.close();
  await member.close();
});

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const pattern = (n: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(i, i);
  return b;
};

describe('exportVdi', () => {
  it('streams the body, resolves done when the task succeeded, destroys the task', async () => {
    behaviour.body = pattern(3 << 20);
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', base: 'OpaqueRef:b', format: 'vhd' });
    expect(sha(await collect(e.body))).toBe(sha(behaviour.body));
    await e.done;
    expect(master.tasks.has(e.task)).toBe(false);
    const create = master.calls.find((c) => c.method === 'task.create');
    expect(create).toBeDefined();
  });

  it('follows a 302 to the host that holds the SR', async () => {
    behaviour = { redirect: true, body: pattern(1 << 20) };
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' });
    expect(sha(await collect(e.body))).toBe(sha(behaviour.body!));
    await e.done;
  });

  it('rejects done with the task error when the body is cut', async () => {
    behaviour = { body: pattern(2 << 20), cutAfter: 100_000 };
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' });
    await collect(e.body).catch(() => undefined);
    await expect(e.done).rejects.toMatchObject({ name: 'XapiError', code: 'VDI_IO_ERROR' });
  });

  it('treats a 200 with a failed task as a failure', async () => {
    behaviour = {
      body: pattern(65536),
      failTask: ['SR_BACKEND_FAILURE_46', '', 'The VDI is not available', ''],
    };
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' });
    await collect(e.body);
    await expect(e.done).rejects.toMatchObject({ code: 'SR_BACKEND_FAILURE_46' });
  });

  it('fails the body and done when the body starts with HTTP/', async () => {
    behaviour = { httpInBody: true };
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'vhd' });
    await expect(collect(e.body)).rejects.toBeInstanceOf(XapiError);
    await expect(e.done).rejects.toMatchObject({ code: 'EXPORT_BODY_IS_HTTP_ERROR' });
  });

  it('keeps back-pressure: a stalled reader stops the server', async () => {
    behaviour = { body: pattern(24 << 20) };
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' });
    const it = e.body[Symbol.asyncIterator]();
    let read = 0;
    while (read < 1 << 20) read += ((await it.next()).value as Buffer).length;
    await new Promise((r) => setTimeout(r, 300));
    // Only socket and stream buffers sit between the server and the stalled reader.
    expect(exportWritten - read).toBeLessThan(16 << 20);
    for (let n = await it.next(); !n.done; n = await it.next()) read += (n.value as Buffer).length;
    expect(read).toBe(24 << 20);
    await e.done;
  });

  it('aborting mid-stream cancels the task and rejects with the abort', async () => {
    behaviour = { body: pattern(24 << 20) };
    const ac = new AbortController();
    const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw', signal: ac.signal });
    const it = e.body[Symbol.asyncIterator]();
    await it.next();
    ac.abort();
    await expect(collect(e.body)).rejects.toBeInstanceOf(Error);
    await expect(e.done).rejects.toMatchObject({ name: 'AbortError' });
    expect(master.calls.some((c) => c.method === 'task.cancel' && c.params[1] === e.task)).toBe(true);
    expect(master.tasks.has(e.task)).toBe(false);
  });

  it('reports the task error when the export is refused before any data', async () => {
    master.routes.unshift((_req, res, url) => {
      if (url.pathname !== '/export_raw_vdi') return false;
      master.finishTask(url.searchParams.get('task_id') ?? '', {
        error: ['INTERNAL_ERROR', 'Unknown format x'],
      });
      res.writeHead(404).end();
      return true;
    });
    try {
      await expect(x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' })).rejects.toMatchObject({
        code: 'INTERNAL_ERROR',
        params: ['Unknown format x'],
      });
      expect(master.tasks.size).toBe(0);
    } finally {
      master.routes.shift();
    }
  });

  it('never puts the session in an error message', async () => {
    const e = await x
      .exportVdi({ vdi: 'OpaqueRef:v', format: 'raw', signal: AbortSignal.abort() })
      .catch((err) => err);
    expect(e).toBeInstanceOf(Error);
    for (const s of master.sessions) expect(`${(e as Error).message}${JSON.stringify(e)}`).not.toContain(s);
  });
});

describe('importVdi', () => {
  it('probes without a task, then PUTs with an exact Content-Length and no chunked encoding', async () => {
    const data = pattern(2 << 20);
    await x.importVdi({
      vdi: 'OpaqueRef:t',
      format: 'vhd',
      body: Readable.from([data]),
      contentLength: data.length,
    });
    expect(imports).toHaveLength(2);
    const [probe, put] = imports as [(typeof imports)[0], (typeof imports)[0]];
    expect(probe.bytes).toBe(0);
    expect(probe.query.has('task_id')).toBe(false);
    expect(put.query.get('task_id')).toMatch(/^OpaqueRef:/);
    expect(put.query.get('format')).toBe('vhd');
    expect(put.headers['content-length']).toBe(String(data.length));
    expect(put.headers['transfer-encoding']).toBeUndefined();
    expect(put.sha).toBe(sha(data));
    expect(master.tasks.has(put.query.get('task_id') ?? '')).toBe(false);
  });

  it('streams to the redirect target found by the probe', async () => {
    behaviour = { redirect: true };
    const data = pattern(1 << 20);
    await x.importVdi({
      vdi: 'OpaqueRef:t',
      format: 'raw',
      body: Readable.from([data]),
      contentLength: data.length,
    });
    expect(imports.map((i) => i.host)).toEqual(['member', 'member']);
    expect(imports[1]!.sha).toBe(sha(data));
  });

  it('fails when the task fails after a 200', async () => {
    behaviour = { failTask: ['VDI_IO_ERROR', 'Device I/O errors'] };
    const data = pattern(65536);
    await expect(
      x.importVdi({
        vdi: 'OpaqueRef:t',
        format: 'raw',
        body: Readable.from([data]),
        contentLength: data.length,
      }),
    ).rejects.toMatchObject({ name: 'XapiError', code: 'VDI_IO_ERROR', method: 'import_raw_vdi' });
  });

  it('aborting an upload cancels its task', async () => {
    behaviour = { readDelayMs: 5 };
    const ac = new AbortController();
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 256; i++) yield Buffer.alloc(65536, i);
      })(),
    );
    setTimeout(() => ac.abort(), 100);
    await expect(
      x.importVdi({ vdi: 'OpaqueRef:t', format: 'raw', body, contentLength: 256 * 65536, signal: ac.signal }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(master.calls.some((c) => c.method === 'task.cancel')).toBe(true);
    expect(master.tasks.size).toBe(0);
  });

  it('a body whose own source fails ends the upload with that error at once, its task cancelled', async () => {
    behaviour = {};
    const body = Readable.from(
      (async function* () {
        yield Buffer.alloc(65536, 1);
        await new Promise((r) => setTimeout(r, 20));
        throw new XapiError('NBD_READ_FAILED', ['cut'], 'nbd read');
      })(),
    );
    const cancels = master.calls.filter((c) => c.method === 'task.cancel').length;
    const started = Date.now();
    await expect(
      x.importVdi({ vdi: 'OpaqueRef:t', format: 'raw', body, contentLength: 4 * 65536 }),
    ).rejects.toMatchObject({ name: 'XapiError', code: 'NBD_READ_FAILED' });
    // not the 2 s wait for a task that could explain a failure on the host's side
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(master.calls.filter((c) => c.method === 'task.cancel').length).toBe(cancels + 1);
    expect(master.tasks.size).toBe(0);
  });

  it('refuses a body shorter than contentLength', async () => {
    const data = pattern(65536);
    await expect(
      x.importVdi({
        vdi: 'OpaqueRef:t',
        format: 'raw',
        body: Readable.from([data]),
        contentLength: data.length + 512,
      }),
    ).rejects.toBeInstanceOf(Error);
  });

  it('pulls the body only as fast as the server reads (back-pressure)', async () => {
    behaviour = { readDelayMs: 1 };
    const total = 12 << 20;
    let produced = 0;
    let maxAhead = 0;
    const chunk = Buffer.alloc(65536, 7);
    const body = new Readable({
      read() {
        if (produced >= total) {
          this.push(null);
          return;
        }
        produced += chunk.length;
        maxAhead = Math.max(maxAhead, produced - importReceived);
        this.push(chunk);
      },
    });
    await x.importVdi({ vdi: 'OpaqueRef:t', format: 'raw', body, contentLength: total });
    expect(produced).toBe(total);
    expect(imports.at(-1)?.bytes).toBe(total);
    expect(maxAhead).toBeLessThan(16 << 20);
  });
});
