/**
 * RPC dispatch, in XAPI's order: method lookup, Async capability, parameter count, master check,
 * session check, fault injection, unmarshalling; then the handler, or a task for Async.* calls
 * (whose failures are delivered only through the task).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallCtx, MethodDef, Registry } from './api/registry.js';
import { unmarshal } from './api/registry.js';
import { XapiError } from './errors.js';
import type { PoolState } from './state.js';
import type { XValue } from './wire/values.js';

export type RpcOutcome = { ok: true; value: XValue } | { ok: false; error: string[] };

const NO_SESSION = new Set([
  'session.login_with_password',
  'session.slave_local_login_with_password',
  'system.listMethods',
]);

export function lookup(
  reg: Registry,
  wire: string,
): { def: MethodDef | undefined; isAsync: boolean; name: string } {
  let name = wire;
  let isAsync = false;
  if (name.startsWith('Async.')) {
    isAsync = true;
    name = name.slice(6);
  }
  let def = reg.get(name);
  if (!def && !name.includes('.')) {
    // the underscore wire form: VM_get_record
    const us = name.indexOf('_');
    if (us > 0) {
      const alt = `${name.slice(0, us)}.${name.slice(us + 1)}`;
      def = reg.get(alt);
      if (def) name = alt;
    }
  }
  return { def, isAsync, name };
}

export async function dispatch(
  reg: Registry,
  pool: PoolState,
  hostIndex: number,
  wire: string,
  rawArgs: unknown[],
): Promise<RpcOutcome> {
  const testHook = wire.startsWith('sim.');
  if (!testHook) {
    pool.callLog.push(wire);
    if (pool.faults.latencyMs > 0) await sleep(pool.faults.latencyMs);
  }
  try {
    const value = await dispatchInner(reg, pool, hostIndex, wire, rawArgs);
    return { ok: true, value };
  } catch (e) {
    if (e instanceof XapiError) return { ok: false, error: e.description };
    return { ok: false, error: ['INTERNAL_ERROR', e instanceof Error ? e.message : String(e)] };
  }
}

async function dispatchInner(
  reg: Registry,
  pool: PoolState,
  hostIndex: number,
  wire: string,
  rawArgs: unknown[],
): Promise<XValue> {
  const { def, isAsync, name } = lookup(reg, wire);
  if (!def) throw new XapiError('MESSAGE_METHOD_UNKNOWN', [wire]);
  if (isAsync && !def.async) {
    throw new XapiError('Fault', [`No async mode for this operation (rpc: ${wire})`]);
  }
  const withSession = def.session !== false;
  const given = rawArgs.length - (withSession ? 1 : 0);
  const required = def.params.filter((x) => x.def === undefined).length;
  if (given < required || given > def.params.length) {
    throw new XapiError('MESSAGE_PARAMETER_COUNT_MISMATCH', [
      wire,
      String(required),
      String(Math.max(0, given)),
    ]);
  }
  const isMaster = hostIndex === pool.masterIndex;
  let session = '';
  if (withSession) {
    if (!isMaster) throw new XapiError('HOST_IS_SLAVE', [pool.master.address]);
    const s = rawArgs[0];
    if (!pool.validSession(s)) throw new XapiError('SESSION_INVALID', [typeof s === 'string' ? s : '']);
    session = s;
    const rec = pool.db.find('session', s);
    if (rec) rec.last_active = new Date();
  } else if (!isMaster && name !== 'system.listMethods') {
    throw new XapiError('HOST_IS_SLAVE', [pool.master.address]);
  }
  const callArgs = rawArgs.slice(withSession ? 1 : 0);
  const args: XValue[] = def.params.map((pd, i) =>
    i < callArgs.length ? unmarshal(pd.t, callArgs[i]) : (pd.def as XValue),
  );
  const fault = NO_SESSION.has(name) || name.startsWith('sim.') ? undefined : pool.faults.check(name);
  const ctx: CallCtx = { pool, session, hostIndex };
  if (!isAsync) {
    if (fault) throw fault;
    const v = await def.handler(ctx, args);
    return v === undefined ? '' : v;
  }
  const task = pool.createTask(`Async.${name}`);
  ctx.task = task;
  setTimeout(async () => {
    try {
      if (fault) throw fault;
      const v = await def.handler(ctx, args);
      pool.completeTask(task, v === undefined ? '' : v);
    } catch (e) {
      pool.failTask(task, e);
    }
  }, 1);
  return task;
}

export { NO_SESSION };
