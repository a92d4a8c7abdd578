/** The test hooks, in-process (SimTestApi) and over the wire (the sim.* namespace). */
import { XapiError } from '../errors.js';
import type { ClassName } from '../schema.js';
import type { PoolState } from '../state.js';
import type { SimTestApi } from '../types.js';
import { cloneValue, jsonValue, type XRecord } from '../wire/values.js';
import { p, type Registry } from './registry.js';
import { vtpmContents } from './vtpm.js';

export function makeTestApi(pool: PoolState): SimTestApi {
  const vdi = (uuid: string): string => pool.db.byUuid('VDI', uuid);
  return {
    writeVdi(uuid, offset, data) {
      const ref = vdi(uuid);
      pool.disk(ref).write(offset, data);
      pool.syncVdi(ref);
    },
    readVdi: (uuid, offset, length) => pool.disk(vdi(uuid)).read(offset, length),
    hashVdi: (uuid) => pool.disk(vdi(uuid)).hash(),
    injectFault: (f) => pool.faults.inject(f),
    cutStream: (f) => pool.faults.cutStream(f),
    throttle(bps) {
      pool.faults.bytesPerSecond = bps && bps > 0 ? bps : undefined;
    },
    hostThrottle(bps) {
      pool.faults.hostBytesPerSecond = bps && bps > 0 ? bps : undefined;
    },
    latency(ms) {
      pool.faults.latencyMs = Math.max(0, ms);
    },
    expireSessions() {
      for (const ref of pool.objectsOf('session')) pool.db.destroy('session', ref);
    },
    switchMaster(i) {
      const h = pool.hosts[i];
      if (!h) throw new XapiError('HANDLE_INVALID', ['host', String(i)]);
      pool.masterIndex = i;
      pool.db.set('pool', pool.poolRef, 'master', h.ref);
    },
    clearFaults: () => pool.faults.clear(),
    guest: (b) => {
      pool.guests.rules.push({ ...b });
    },
    calls: () => [...pool.callLog],
    exportedBytes: () => pool.exportedBytes,
    importedBytes: () => pool.importedBytes,
    vtpmContents: (ref) => vtpmContents(pool, ref),
    storage: (settings) => {
      pool.storage.settings = { ...pool.storage.settings, ...settings };
    },
    settleStorage: () => pool.storage.gc.settle(),
    objects: (cls) =>
      pool.db
        .all(cls as ClassName)
        .map(([r, rec]) => [r, jsonValue(cloneValue(rec)) as Record<string, unknown>]),
  };
}

export function registerTestApi(reg: Registry): void {
  const t = (pool: PoolState): SimTestApi => makeTestApi(pool);
  const add = (
    name: string,
    params: ReturnType<typeof p>[],
    fn: (pool: PoolState, args: unknown[]) => unknown,
  ): void =>
    reg.add({
      name: `sim.${name}`,
      params,
      handler: ({ pool }, args) => {
        const v = fn(pool, args);
        return v === undefined ? undefined : (v as string);
      },
    });
  add('write_vdi', [p('uuid', 'string'), p('offset', 'int'), p('data', 'string')], (pool, [u, o, d]) =>
    t(pool).writeVdi(String(u), Number(o), Buffer.from(String(d), 'base64')),
  );
  // `length` bytes of one value: benchmarks change hundreds of MiB through the 300 KiB RPC body cap
  add(
    'fill_vdi',
    [p('uuid', 'string'), p('offset', 'int'), p('length', 'int'), p('byte', 'int')],
    (pool, [u, o, l, b]) => t(pool).writeVdi(String(u), Number(o), Buffer.alloc(Number(l), Number(b))),
  );
  add('read_vdi', [p('uuid', 'string'), p('offset', 'int'), p('length', 'int')], (pool, [u, o, l]) =>
    t(pool).readVdi(String(u), Number(o), Number(l)).toString('base64'),
  );
  add('hash_vdi', [p('uuid', 'string')], (pool, [u]) => t(pool).hashVdi(String(u)));
  add('inject_fault', [p('fault', 'record')], (pool, [f]) => {
    const r = f as XRecord;
    t(pool).injectFault({
      method: String(r.method),
      ...(r.nth !== undefined ? { nth: Number(r.nth) } : {}),
      ...(r.count !== undefined ? { count: Number(r.count) } : {}),
      error: Array.isArray(r.error) ? r.error.map(String) : [],
    });
  });
  add('cut_stream', [p('cut', 'record')], (pool, [f]) => {
    const r = f as XRecord;
    const path = String(r.path);
    if (path !== 'export_raw_vdi' && path !== 'import_raw_vdi' && path !== 'nbd')
      throw new XapiError('INTERNAL_ERROR', [`bad path ${path}`]);
    t(pool).cutStream({
      path,
      afterBytes: Number(r.afterBytes),
      ...(r.nth !== undefined ? { nth: Number(r.nth) } : {}),
      ...(r.count !== undefined ? { count: Number(r.count) } : {}),
    });
  });
  add('throttle', [p('bytes_per_second', 'int')], (pool, [b]) => t(pool).throttle(Number(b) || undefined));
  add('host_throttle', [p('bytes_per_second', 'int')], (pool, [b]) =>
    t(pool).hostThrottle(Number(b) || undefined),
  );
  add('guest', [p('behaviour', 'record')], (pool, [b]) => {
    const r = b as XRecord;
    const outcome = String(r.outcome ?? 'tools');
    if (outcome !== 'tools' && outcome !== 'silent' && outcome !== 'crash')
      throw new XapiError('INTERNAL_ERROR', [`bad outcome ${outcome}`]);
    t(pool).guest({
      nameIncludes: String(r.nameIncludes ?? ''),
      outcome,
      ...(r.delayMs !== undefined ? { delayMs: Number(r.delayMs) } : {}),
      ...(r.xenstore !== undefined ? { xenstore: r.xenstore as Record<string, string> } : {}),
    });
  });
  add('latency', [p('ms', 'int')], (pool, [ms]) => t(pool).latency(Number(ms)));
  add('expire_sessions', [], (pool) => t(pool).expireSessions());
  add('switch_master', [p('host_index', 'int')], (pool, [i]) => t(pool).switchMaster(Number(i)));
  add('clear_faults', [], (pool) => t(pool).clearFaults());
  reg.add({ name: 'sim.calls', params: [], handler: ({ pool }) => t(pool).calls() });
}
