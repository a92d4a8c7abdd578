/** Conformance of the RPC surface with XAPI's (docs/xapi.md; expected values come from xen-api's sources). */
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { json, parseResponse, rawXml, TestSession, xml } from './client.js';

const MiB = 1024 * 1024;
let pool: SimPool;
let s: TestSession;

beforeAll(async () => {
  pool = await startPool({
    name: 'rpc',
    hosts: 2,
    password: 'secret',
    srs: [{ name_label: 'Local', sizeBytes: 1024 * MiB }],
    networks: [{ name_label: 'net0' }],
    vms: [
      {
        name_label: 'run',
        power_state: 'Running',
        disks: [{ sizeBytes: 8 * MiB }],
        vifs: [{ network: 'net0' }],
      },
      { name_label: 'stopped', power_state: 'Halted', disks: [{ sizeBytes: 4 * MiB }] },
    ],
  });
  s = await TestSession.login(pool.url, 'root', 'secret');
});
afterAll(async () => {
  await pool?.close();
});

const vmRef = async (name: string): Promise<string> =>
  (await s.call<string[]>('VM.get_by_name_label', name))[0]!;

describe('wire format over HTTP', () => {
  it('answers XML-RPC on / and any other POST path with text/xml and exact bytes', async () => {
    for (const path of ['/', '/RPC2', '/xmlrpc']) {
      const r = await rawXml(`${pool.url}${path}`, 'VM.get_by_uuid', [s.ref, 'nope']);
      expect(r.status).toBe(200);
      expect(r.type).toBe('text/xml');
      expect(r.body).toBe(
        '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name>' +
          '<value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>' +
          '<value>UUID_INVALID</value><value>VM</value><value>nope</value></data></array></value></member>' +
          '</struct></value></param></params></methodResponse>',
      );
    }
  });

  it('sends ints as strings, bools as <boolean>, datetimes in basic format, null refs as OpaqueRef:NULL', async () => {
    const vm = await vmRef('stopped');
    const r = await rawXml(pool.url, 'VM.get_record', [s.ref, vm]);
    expect(r.body).toMatch(/<member><name>memory_static_max<\/name><value>\d+<\/value><\/member>/);
    expect(r.body).toContain(
      '<member><name>is_a_template</name><value><boolean>0</boolean></value></member>',
    );
    expect(r.body).toContain(
      '<member><name>snapshot_time</name><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></member>',
    );
    expect(r.body).toContain('<member><name>snapshot_of</name><value>OpaqueRef:NULL</value></member>');
    expect(r.body).not.toMatch(/<(string|int|i4)>/);
    expect(r.body).not.toMatch(/>\s+</);
  });

  it('JSON-RPC v1 and v2 shapes, sessions shared with XML-RPC', async () => {
    const v1ok = await json(pool.url, { method: 'VM.get_by_name_label', params: [s.ref, 'run'], id: 7 });
    expect(v1ok.type).toBe('application/json');
    expect(v1ok.body).toEqual({ result: [await vmRef('run')], error: null, id: 7 });
    const v1err = await json(pool.url, { method: 'VM.get_record', params: [s.ref, 'OpaqueRef:x'], id: 'a' });
    expect(v1err.body).toEqual({ result: null, error: ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'], id: 'a' });
    const v2ok = await json(pool.url, {
      jsonrpc: '2.0',
      method: 'VM.get_memory_static_max',
      params: [s.ref, await vmRef('run')],
      id: 1,
    });
    expect(v2ok.body).toMatchObject({ jsonrpc: '2.0', id: 1 });
    expect(typeof (v2ok.body as { result: unknown }).result).toBe('number');
    const v2err = await json(pool.url, {
      jsonrpc: '2.0',
      method: 'VM.get_record',
      params: [s.ref, 'OpaqueRef:x'],
      id: 2,
    });
    expect(v2err.body).toEqual({
      jsonrpc: '2.0',
      error: { code: 1, message: 'HANDLE_INVALID', data: ['VM', 'OpaqueRef:x'] },
      id: 2,
    });
  });

  it('malformed requests get HTTP 500 with an HTML body', async () => {
    const bad = await fetch(pool.url, { method: 'POST', body: '<methodCall><oops' });
    expect(bad.status).toBe(500);
    expect(await bad.text()).toMatch(/^<html><body><h1>HTTP 500 internal server error<\/h1>/);
    const badJson = await fetch(`${pool.url}/jsonrpc`, { method: 'POST', body: '{"method":' });
    expect(badJson.status).toBe(500);
    // RPC bodies need a Content-Length: a chunked request is refused the same way
    const body = new TextEncoder().encode(
      '<?xml version="1.0"?><methodCall><methodName>VM.get_all</methodName></methodCall>',
    );
    const chunked = await request(pool.url, { method: 'POST', body: Readable.from([Buffer.from(body)]) });
    expect(chunked.statusCode).toBe(500);
    expect(await chunked.body.text()).toMatch(/Content-Length required/);
  });

  it('system.listMethods lists implicit, explicit and Async names', async () => {
    const r = await xml(pool.url, 'system.listMethods', []);
    const names = r.Status === 'Success' ? (r.Value as string[]) : [];
    for (const m of [
      'VM.get_all_records',
      'VM.snapshot',
      'Async.VM.snapshot',
      'VDI.copy',
      'event.from',
      'task.create',
    ]) {
      expect(names).toContain(m);
    }
  });
});

describe('dispatch errors', () => {
  it('MESSAGE_METHOD_UNKNOWN and the parameter count rules with defaults', async () => {
    expect(await s.failure('VM.frobnicate')).toEqual(['MESSAGE_METHOD_UNKNOWN', 'VM.frobnicate']);
    const vm = await vmRef('stopped');
    // VM.snapshot: vm, new_name, ignore_vdis (d) → 2 required, 2 or 3 accepted
    expect(await s.failure('VM.snapshot', vm)).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'VM.snapshot',
      '2',
      '1',
    ]);
    expect(await s.failure('VM.snapshot', vm, 'a', [], 'extra')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'VM.snapshot',
      '2',
      '4',
    ]);
    // no defaults: exactly
    expect(await s.failure('VM.get_record', vm, 'extra')).toEqual([
      'MESSAGE_PARAMETER_COUNT_MISMATCH',
      'VM.get_record',
      '1',
      '2',
    ]);
    // VDI.copy 1–4 (a VDI attached RW to a running VM is in use: copy the halted VM's)
    const vbd = (await s.call<string[]>('VM.get_VBDs', vm))[0];
    const vdi = await s.call<string>('VBD.get_VDI', vbd);
    const running = await s.call<string>(
      'VBD.get_VDI',
      (await s.call<string[]>('VM.get_VBDs', await vmRef('run')))[0],
    );
    expect(await s.failure('VDI.copy', running)).toEqual(['VDI_IN_USE', running, 'copy']);
    const copy = await s.call<string>('VDI.copy', vdi);
    expect(copy).toMatch(/^OpaqueRef:/);
    await s.call('VDI.destroy', copy);
    // login 2–4
    expect((await xml(pool.url, 'session.login_with_password', ['root'])).Status).toBe('Failure');
    expect((await xml(pool.url, 'session.login_with_password', ['root', 'secret'])).Status).toBe('Success');
  });

  it('HANDLE_INVALID and UUID_INVALID carry the class name', async () => {
    expect(await s.failure('VDI.get_record', 'OpaqueRef:nope')).toEqual([
      'HANDLE_INVALID',
      'VDI',
      'OpaqueRef:nope',
    ]);
    expect(await s.failure('SR.get_by_uuid', '00000000-0000-0000-0000-000000000000')).toEqual([
      'UUID_INVALID',
      'SR',
      '00000000-0000-0000-0000-000000000000',
    ]);
  });

  it('MAP_DUPLICATE_KEY on add_to_ of an existing key; remove_from_ of a missing key is fine; sets idempotent', async () => {
    const vm = await vmRef('stopped');
    await s.call('VM.add_to_other_config', vm, 'k', 'v');
    expect(await s.failure('VM.add_to_other_config', vm, 'k', 'w')).toEqual([
      'MAP_DUPLICATE_KEY',
      'VM',
      'other_config',
      vm,
      'k',
    ]);
    await s.call('VM.remove_from_other_config', vm, 'k');
    await s.call('VM.remove_from_other_config', vm, 'k');
    await s.call('VM.add_tags', vm, 't');
    await s.call('VM.add_tags', vm, 't');
    expect(await s.call('VM.get_tags', vm)).toEqual(['t']);
    await s.call('VM.remove_tags', vm, 't');
    expect(await s.call('VM.get_tags', vm)).toEqual([]);
  });

  it('bools must be <boolean>: a string is refused', async () => {
    const vm = await vmRef('stopped');
    const r = await s.failure('VM.set_is_a_template', vm, 'true');
    expect(r[0]).toBe('INTERNAL_ERROR');
  });

  it('OPERATION_BLOCKED comes before VM_BAD_POWER_STATE; power state text is lower-case', async () => {
    const run = await vmRef('run');
    expect(await s.failure('VM.clone', run, 'c')).toEqual(['VM_BAD_POWER_STATE', run, 'halted', 'running']);
    expect(await s.failure('VM.start', run, false, false)).toEqual([
      'VM_BAD_POWER_STATE',
      run,
      'halted',
      'running',
    ]);
    await s.call('VM.add_to_blocked_operations', run, 'clone', 'replica: clone it to use it');
    expect(await s.failure('VM.clone', run, 'c')).toEqual([
      'OPERATION_BLOCKED',
      run,
      'replica: clone it to use it',
    ]);
    await s.call('VM.remove_from_blocked_operations', run, 'clone');
    const stopped = await vmRef('stopped');
    expect(await s.failure('VM.clean_shutdown', stopped)).toEqual([
      'VM_BAD_POWER_STATE',
      stopped,
      'running',
      'halted',
    ]);
  });

  it('Async.* on a message without async mode is a Fault', async () => {
    const r = await s.failure('Async.VM.get_record', await vmRef('run'));
    expect(r[0]).toBe('Fault');
  });

  it('SESSION_INVALID after logout and after expireSessions; SESSION_AUTHENTICATION_FAILED', async () => {
    const t = await TestSession.login(pool.url, 'root', 'secret');
    await t.call('session.logout');
    expect(await t.failure('VM.get_all')).toEqual(['SESSION_INVALID', t.ref]);
    const bad = await xml(pool.url, 'session.login_with_password', ['root', 'wrong']);
    expect(bad).toEqual({
      Status: 'Failure',
      ErrorDescription: ['SESSION_AUTHENTICATION_FAILED', 'root', 'Authentication failure'],
    });
    const u = await TestSession.login(pool.url, 'root', 'secret');
    pool.test.expireSessions();
    expect(await u.failure('VM.get_all')).toEqual(['SESSION_INVALID', u.ref]);
    s = await TestSession.login(pool.url, 'root', 'secret');
  });

  it('HOST_IS_SLAVE from a member for login and calls, with the master address; switchMaster moves it', async () => {
    const [master, member] = pool.hosts;
    const r = await xml(member!.url, 'session.login_with_password', ['root', 'secret']);
    expect(r).toEqual({ Status: 'Failure', ErrorDescription: ['HOST_IS_SLAVE', master!.address] });
    expect((await xml(member!.url, 'VM.get_all', [s.ref])).Status).toBe('Failure');
    const addr = await s.call<string>(
      'host.get_address',
      await s.call<string>('pool.get_master', (await s.call<string[]>('pool.get_all'))[0]),
    );
    expect(addr).toBe(master!.address);
    expect(`http://${addr}`).toBe(pool.url);
    pool.test.switchMaster(1);
    try {
      const back = await xml(master!.url, 'session.login_with_password', ['root', 'secret']);
      expect(back).toEqual({ Status: 'Failure', ErrorDescription: ['HOST_IS_SLAVE', member!.address] });
      const m = await TestSession.login(member!.url, 'root', 'secret');
      expect(await m.call('VM.get_all')).toBeInstanceOf(Array);
      expect(pool.url).toBe(member!.url);
    } finally {
      pool.test.switchMaster(0);
    }
  });

  it('injected faults hit the nth call (sync and Async) and calls() records wire names', async () => {
    const vm = await vmRef('stopped');
    pool.test.injectFault({
      method: 'VM.get_name_label',
      nth: 2,
      count: 2,
      error: ['SR_BACKEND_FAILURE_46', '', 'x', ''],
    });
    expect(await s.call('VM.get_name_label', vm)).toBe('stopped');
    expect(await s.failure('VM.get_name_label', vm)).toEqual(['SR_BACKEND_FAILURE_46', '', 'x', '']);
    expect((await s.failure('VM.get_name_label', vm))[0]).toBe('SR_BACKEND_FAILURE_46');
    expect(await s.call('VM.get_name_label', vm)).toBe('stopped');
    pool.test.injectFault({ method: 'VM.snapshot', error: ['VDI_IO_ERROR', 'Device I/O errors'] });
    // Async: the call itself succeeds, the task carries the failure
    const task = await s.call<string>('Async.VM.snapshot', vm, 'f');
    const rec = await s.waitTask(task);
    expect(rec.status).toBe('failure');
    expect(rec.error_info).toEqual(['VDI_IO_ERROR', 'Device I/O errors']);
    await s.call('task.destroy', task);
    pool.test.clearFaults();
    expect(pool.test.calls()).toContain('Async.VM.snapshot');
  });

  it('latency delays every call', async () => {
    pool.test.latency(60);
    const t0 = Date.now();
    await s.call('VM.get_all');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    pool.test.latency(0);
  });
});

describe('the sim.* namespace', () => {
  it('writes, reads and hashes VDIs over the wire', async () => {
    const vdi = (await s.call<string[]>('VDI.get_all'))[0]!;
    const uuid = await s.call<string>('VDI.get_uuid', vdi);
    await s.call('sim.write_vdi', uuid, '4096', Buffer.from('over the wire').toString('base64'));
    expect(Buffer.from(await s.call<string>('sim.read_vdi', uuid, '4096', '13'), 'base64').toString()).toBe(
      'over the wire',
    );
    expect(await s.call('sim.hash_vdi', uuid)).toBe(pool.test.hashVdi(uuid));
    await s.call('sim.fill_vdi', uuid, '8192', '3', '122');
    expect(pool.test.readVdi(uuid, 8191, 5).toString('latin1')).toBe('\0zzz\0');
    await s.call('sim.inject_fault', { method: 'VM.get_all', error: ['X'] });
    expect(await s.failure('VM.get_all')).toEqual(['X']);
    await s.call('sim.clear_faults');
    expect(await s.call('VM.get_all')).toBeInstanceOf(Array);
  });

  it('a pool started with testApi: false has no sim.* methods', async () => {
    const p = await startPool({ name: 'plain', password: 'pw', testApi: false });
    try {
      const t = await TestSession.login(p.url, 'root', 'pw');
      expect(await t.failure('sim.hash_vdi', 'x')).toEqual(['MESSAGE_METHOD_UNKNOWN', 'sim.hash_vdi']);
    } finally {
      await p.close();
    }
  });
});

it('parseResponse helper round-trips (sanity of the test client)', async () => {
  expect(
    await parseResponse(
      '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value></value></member></struct></value></param></params></methodResponse>',
    ),
  ).toEqual({ Status: 'Success', Value: '' });
});
