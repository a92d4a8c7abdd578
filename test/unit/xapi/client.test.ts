import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, XapiError, type XapiOptions, XapiTransportError } from '../../../functions/xapi/index.js';
import { type FakeXapi, Fault, methodsCalled, PASSWORD, startFake, USER } from '../../support/fake-xapi.js';

const base = (f: FakeXapi, extra: Partial<XapiOptions> = {}): XapiOptions => ({
  url: f.url,
  username: USER,
  password: PASSWORD,
  allowPlainHttp: true,
  retry: { attempts: 4, delayMs: 1 },
  ...extra,
});

let fake: FakeXapi;
let other: FakeXapi;
const clients: Xapi[] = [];
async function connect(o: XapiOptions): Promise<Xapi> {
  const x = await Xapi.connect(o);
  clients.push(x);
  return x;
}

beforeAll(async () => {
  fake = await startFake();
  other = await startFake();
});
afterEach(async () => {
  for (const x of clients.splice(0)) await x.logout();
  for (const f of [fake, other]) {
    f.calls.length = 0;
    f.slaveOf = undefined;
    f.jsonVersion = 'v2';
    f.asyncDelayMs = 5;
    for (const k of [...f.methods.keys()]) if (!/^(session|task|event)\./.test(k)) f.methods.delete(k);
  }
});
afterAll(async () => {
  await fake.close();
  await other.close();
});

describe('sessions', () => {
  it('logs in, injects the session as first param, normalises records', async () => {
    fake.methods.set('VDI.get_record', (p) => ({
      uuid: 'u',
      virtual_size: 4294967296 * 2,
      VBDs: [],
      ref: p[0],
    }));
    fake.methods.set('VDI.get_all_records', () => ({ 'OpaqueRef:a': { uuid: 'a', virtual_size: 5 } }));
    fake.methods.set('VDI.get_by_uuid', (p) => `OpaqueRef:${String(p[0])}`);
    const x = await connect(base(fake));
    expect(x.url).toBe(fake.url);
    const rec = await x.getRecord('VDI', 'OpaqueRef:v');
    expect(rec.virtual_size).toBe(8589934592);
    expect(rec.ref).toBe('OpaqueRef:v');
    const all = await x.getAllRecords('VDI');
    expect([...all.entries()]).toEqual([['OpaqueRef:a', { uuid: 'a', virtual_size: 5 }]]);
    expect(await x.getByUuid('VDI', 'u1')).toBe('OpaqueRef:u1');
    const login = fake.calls[0]!;
    expect(login.method).toBe('session.login_with_password');
    const session = fake.calls.find((c) => c.method === 'VDI.get_record')!.params[0];
    expect(typeof session === 'string' && fake.sessions.has(session)).toBe(true);
    expect(fake.calls.filter((c) => c.raw.includes(PASSWORD)).map((c) => c.method)).toEqual([
      'session.login_with_password',
    ]);
  });

  it('refuses plain http unless allowed', async () => {
    await expect(Xapi.connect({ ...base(fake), allowPlainHttp: false })).rejects.toMatchObject({
      name: 'XapiError',
      code: 'PLAIN_HTTP_REFUSED',
    });
    expect(fake.calls).toHaveLength(0);
  });

  it('reports a wrong password as SESSION_AUTHENTICATION_FAILED', async () => {
    const e = await Xapi.connect({ ...base(fake), password: 'wrong-pass-123' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(XapiError);
    expect(e).toMatchObject({ code: 'SESSION_AUTHENTICATION_FAILED', method: 'session.login_with_password' });
    expect(JSON.stringify(e)).not.toContain('wrong-pass-123');
  });

  it('follows HOST_IS_SLAVE to the master at login', async () => {
    fake.slaveOf = other.address;
    const x = await connect(base(fake));
    expect(x.url).toBe(other.url);
    fake.slaveOf = undefined;
    other.methods.set('pool.get_all', () => ['OpaqueRef:p']);
    expect(await x.call('pool.get_all')).toEqual(['OpaqueRef:p']);
    expect(methodsCalled(fake)).toEqual(['session.login_with_password']);
  });

  it('gives up after 3 HOST_IS_SLAVE hops', async () => {
    fake.slaveOf = other.address;
    other.slaveOf = fake.address;
    await expect(Xapi.connect(base(fake))).rejects.toMatchObject({ code: 'TOO_MANY_REDIRECTS' });
    expect(methodsCalled(fake).length + methodsCalled(other).length).toBe(4);
  });

  it('logs in again once on SESSION_INVALID and replays the call', async () => {
    fake.methods.set('host.get_all', () => ['OpaqueRef:h']);
    const x = await connect(base(fake));
    fake.sessions.clear();
    const [a, b] = await Promise.all([x.call('host.get_all'), x.call('host.get_all')]);
    expect(a).toEqual(['OpaqueRef:h']);
    expect(b).toEqual(['OpaqueRef:h']);
    // Two calls failed at once, one re-login served both.
    expect(methodsCalled(fake).filter((m) => m === 'session.login_with_password')).toHaveLength(2);
  });

  it('fails with a scrubbed SESSION_INVALID when the new session is refused too', async () => {
    const x = await connect(base(fake));
    fake.methods.set('host.get_all', () => {
      throw new Fault(['SESSION_INVALID', [...fake.sessions][0] ?? 'x']);
    });
    const e = (await x.call('host.get_all').catch((err: unknown) => err)) as XapiError;
    expect(e).toMatchObject({
      name: 'XapiError',
      code: 'SESSION_INVALID',
      params: ['***'],
      method: 'host.get_all',
    });
    for (const s of fake.sessions) expect(`${e.message}${JSON.stringify(e)}${e.stack}`).not.toContain(s);
  });

  it('follows a master change in the middle of a session', async () => {
    other.methods.set('VM.get_all', () => ['OpaqueRef:vm']);
    const x = await connect(base(fake));
    fake.slaveOf = other.address;
    expect(await x.call('VM.get_all')).toEqual(['OpaqueRef:vm']);
    expect(x.url).toBe(other.url);
  });
});

describe('errors', () => {
  it('carries code, params and method, not the session', async () => {
    fake.methods.set('VM.get_record', (p) => {
      throw new Fault(['HANDLE_INVALID', 'VM', String(p[0])]);
    });
    const x = await connect(base(fake));
    const e = await x.getRecord('VM', 'OpaqueRef:gone').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(XapiError);
    expect(e).toMatchObject({
      name: 'XapiError',
      code: 'HANDLE_INVALID',
      params: ['VM', 'OpaqueRef:gone'],
      method: 'VM.get_record',
    });
  });

  it('maps a refused connection and a timeout to XapiTransportError', async () => {
    const x = await connect(base(fake, { callTimeoutMs: 200 }));
    fake.methods.set('VM.get_all', () => new Promise((r) => setTimeout(() => r([]), 1000)));
    const e = await x.call('VM.get_all').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(XapiTransportError);
    expect(e).toMatchObject({ name: 'XapiTransportError', code: 'ETIMEDOUT' });

    const dead = await startFake();
    const url = dead.url;
    await dead.close();
    const e2 = await Xapi.connect({ ...base(fake), url }).catch((err: unknown) => err);
    expect(e2).toBeInstanceOf(XapiTransportError);
    expect(e2).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('maps an HTML 500 page to XapiError HTTP_STATUS', async () => {
    fake.routes.push((req, res) => {
      if (!req.headers['x-none']) return false;
      res.end();
      return true;
    });
    const x = await connect(base(fake));
    fake.methods.set('VM.get_all', () => {
      throw new Error('boom');
    });
    // the fake answers INTERNAL_ERROR for handler exceptions
    await expect(x.call('VM.get_all')).rejects.toMatchObject({ code: 'INTERNAL_ERROR' });
    fake.routes.push((req, res) => {
      res
        .writeHead(500, { 'content-type': 'text/html' })
        .end('<html><body><h1>HTTP 500 internal server error</h1>');
      return req.method === 'POST';
    });
    await expect(x.call('VM.get_all')).rejects.toMatchObject({
      name: 'XapiError',
      code: 'HTTP_STATUS',
      params: ['500'],
    });
    fake.routes.length = 0;
  });
});

describe('Async calls', () => {
  it('waits through event.from, returns the parsed result and destroys the task', async () => {
    fake.methods.set('VM.snapshot', (p) => `OpaqueRef:snap-of-${String(p[0])}`);
    const x = await connect(base(fake));
    expect(await x.callAsync('VM.snapshot', 'OpaqueRef:vm', 'name')).toBe('OpaqueRef:snap-of-OpaqueRef:vm');
    expect(methodsCalled(fake)).toContain('event.from');
    expect(methodsCalled(fake)).toContain('task.destroy');
    expect(fake.tasks.size).toBe(0);
    // event.from's timeout is a float on the wire
    expect(fake.calls.find((c) => c.method === 'event.from')!.raw).toMatch(/<double>[0-9.]+<\/double>/);
  });

  it('returns sets and void results', async () => {
    fake.methods.set('VM.import', () => ['OpaqueRef:a', 'OpaqueRef:b']);
    fake.methods.set('VM.clean_shutdown', () => undefined);
    const x = await connect(base(fake));
    expect(await x.callAsync('VM.import', 'u', 'OpaqueRef:sr', false, false)).toEqual([
      'OpaqueRef:a',
      'OpaqueRef:b',
    ]);
    expect(await x.callAsync('VM.clean_shutdown', 'OpaqueRef:vm')).toBe('');
  });

  it('turns a failed task into XapiError named after the method', async () => {
    fake.methods.set('VM.snapshot', (p) => {
      throw new Fault(['OPERATION_BLOCKED', String(p[0]), 'replica']);
    });
    const x = await connect(base(fake));
    await expect(x.callAsync('VM.snapshot', 'OpaqueRef:vm', 'n')).rejects.toMatchObject({
      name: 'XapiError',
      code: 'OPERATION_BLOCKED',
      params: ['OpaqueRef:vm', 'replica'],
      method: 'VM.snapshot',
    });
    expect(fake.tasks.size).toBe(0);
  });

  it('falls back to polling when event.from fails', async () => {
    const original = fake.methods.get('event.from')!;
    fake.methods.set('event.from', () => {
      throw new Fault(['RBAC_PERMISSION_DENIED', 'event.from', 'no']);
    });
    fake.methods.set('VDI.clone', () => 'OpaqueRef:clone');
    fake.asyncDelayMs = 120;
    try {
      const x = await connect(base(fake));
      expect(await x.callAsync('VDI.clone', 'OpaqueRef:v')).toBe('OpaqueRef:clone');
      expect(methodsCalled(fake).filter((m) => m === 'task.get_record').length).toBeGreaterThan(1);
    } finally {
      fake.methods.set('event.from', original);
    }
  });

  it('retries TOO_MANY_PENDING_TASKS with backoff, nothing else', async () => {
    let n = 0;
    fake.methods.set('VDI.copy', () => {
      n++;
      if (n < 3) throw new Fault(['TOO_MANY_PENDING_TASKS']);
      return 'OpaqueRef:copy';
    });
    const x = await connect(base(fake));
    expect(await x.callAsync('VDI.copy', 'OpaqueRef:v', 'OpaqueRef:sr')).toBe('OpaqueRef:copy');
    expect(n).toBe(3);
    let m = 0;
    fake.methods.set('VDI.resize', () => {
      m++;
      throw new Fault(['SR_BACKEND_FAILURE_44', '', 'There is insufficient space', '']);
    });
    await expect(x.callAsync('VDI.resize', 'OpaqueRef:v', 1)).rejects.toMatchObject({
      code: 'SR_BACKEND_FAILURE_44',
    });
    expect(m).toBe(1);
  });

  it('cancels the task on taskTimeoutMs and on abort', async () => {
    fake.methods.set('VM.copy', () => new Promise(() => {}));
    const x = await connect(base(fake, { taskTimeoutMs: 150 }));
    await expect(x.callAsync('VM.copy', 'OpaqueRef:vm', 'n', 'OpaqueRef:sr')).rejects.toMatchObject({
      code: 'TASK_TIMEOUT',
    });
    expect(methodsCalled(fake)).toContain('task.cancel');
    expect(fake.tasks.size).toBe(0);

    const ac = new AbortController();
    const y = await connect(base(fake, { signal: ac.signal }));
    fake.calls.length = 0;
    const p = y.callAsync('VM.copy', 'OpaqueRef:vm', 'n', 'OpaqueRef:sr');
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(methodsCalled(fake)).toContain('task.cancel');
    expect(fake.tasks.size).toBe(0);
  });
});

describe('destroy, setMapEntry, retries', () => {
  it('destroy: HANDLE_INVALID means done, VDI_IN_USE is retried, other errors are not', async () => {
    const x = await connect(base(fake));
    fake.methods.set('VDI.destroy', (p) => {
      throw new Fault(['HANDLE_INVALID', 'VDI', String(p[0])]);
    });
    await expect(x.destroy('VDI', 'OpaqueRef:gone')).resolves.toBeUndefined();
    let n = 0;
    fake.methods.set('VDI.destroy', (p) => {
      if (++n < 3) throw new Fault(['VDI_IN_USE', String(p[0]), 'destroy']);
      return '';
    });
    await x.destroy('VDI', 'OpaqueRef:v');
    expect(n).toBe(3);
    n = 0;
    fake.methods.set('VM.destroy', (p) => {
      n++;
      throw new Fault(['VDI_IN_USE', String(p[0]), 'destroy']);
    });
    await expect(x.destroy('VM', 'OpaqueRef:vm')).rejects.toMatchObject({ code: 'VDI_IN_USE' });
    expect(n).toBe(4); // retry.attempts
    n = 0;
    fake.methods.set('VBD.destroy', () => {
      n++;
      throw new Fault(['OPERATION_NOT_ALLOWED', 'x']);
    });
    await expect(x.destroy('VBD', 'OpaqueRef:b')).rejects.toMatchObject({ code: 'OPERATION_NOT_ALLOWED' });
    expect(n).toBe(1);
  });

  it('does not retry VDI_IN_USE on non-destroy calls', async () => {
    let n = 0;
    fake.methods.set('VDI.set_name_label', (p) => {
      n++;
      throw new Fault(['VDI_IN_USE', String(p[0]), 'update']);
    });
    const x = await connect(base(fake));
    await expect(x.call('VDI.set_name_label', 'OpaqueRef:v', 'x')).rejects.toMatchObject({
      code: 'VDI_IN_USE',
    });
    expect(n).toBe(1);
  });

  it('setMapEntry removes then adds, looping on MAP_DUPLICATE_KEY', async () => {
    const map: Record<string, string> = { k: 'old' };
    let races = 1;
    fake.methods.set('VM.remove_from_other_config', (p) => {
      delete map[String(p[1])];
      return '';
    });
    fake.methods.set('VM.add_to_other_config', (p) => {
      const [ref, k, v] = p.map(String) as [string, string, string];
      if (races-- > 0) map[k] = 'racer';
      if (k in map) throw new Fault(['MAP_DUPLICATE_KEY', 'VM', 'other_config', ref, k]);
      map[k] = v;
      return '';
    });
    const x = await connect(base(fake));
    await x.setMapEntry('VM', 'OpaqueRef:vm', 'other_config', 'k', 'new');
    expect(map).toEqual({ k: 'new' });
    expect(methodsCalled(fake).slice(1)).toEqual([
      'VM.remove_from_other_config',
      'VM.add_to_other_config',
      'VM.remove_from_other_config',
      'VM.add_to_other_config',
    ]);
  });
});

describe('JSON-RPC transport', () => {
  for (const v of ['v1', 'v2'] as const) {
    it(`works end to end with ${v} replies`, async () => {
      fake.jsonVersion = v;
      fake.methods.set('VDI.get_record', () => ({ virtual_size: 2 ** 40, snapshot_time: new Date(0) }));
      fake.methods.set('VDI.snapshot', () => 'OpaqueRef:s');
      fake.methods.set('VDI.destroy', (p) => {
        throw new Fault(['VDI_IN_USE', String(p[0]), 'destroy']);
      });
      const x = await connect(base(fake, { transport: 'jsonrpc' }));
      const rec = await x.getRecord('VDI', 'OpaqueRef:v');
      expect(rec.virtual_size).toBe(2 ** 40);
      expect(rec.snapshot_time).toEqual(new Date(0));
      expect(await x.callAsync('VDI.snapshot', 'OpaqueRef:v')).toBe('OpaqueRef:s');
      await expect(x.call('VDI.destroy', 'OpaqueRef:v')).rejects.toMatchObject({
        code: 'VDI_IN_USE',
        params: ['OpaqueRef:v', 'destroy'],
      });
      expect(fake.calls.every((c) => c.path === '/jsonrpc')).toBe(true);
    });
  }
});
