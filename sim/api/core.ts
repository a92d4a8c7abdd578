/** session, task, event, system and the small explicit messages of pool/host/SR/VBD/VIF. */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChangeEntry } from '../db.js';
import { XapiError } from '../errors.js';
import { CLASSES, type ClassName } from '../schema.js';
import type { PoolState } from '../state.js';
import { cloneValue, NULL_REF, XInt32, type XRecord, type XValue } from '../wire/values.js';
import { constructorFields, self } from './implicit.js';
import { p, type Registry } from './registry.js';

const pad20 = (n: number): string => String(n).padStart(20, '0');
const EVENT_CLASSES = CLASSES.filter((c) => c !== 'session');

interface Subscriptions {
  all: boolean;
  /** lower-case class names */
  cls: Set<string>;
  /** `<lower-case class>/<ref>` */
  refs: Set<string>;
}

function parseSubscriptions(classes: string[]): Subscriptions {
  const out: Subscriptions = { all: false, cls: new Set<string>(), refs: new Set<string>() };
  for (const entry of classes) {
    if (entry === '*') out.all = true;
    else if (/^[A-Za-z_]+$/.test(entry)) out.cls.add(entry.toLowerCase());
    else {
      const m = /^([A-Za-z_]+)\/(.+)$/.exec(entry);
      if (!m) throw new XapiError('EVENT_SUBSCRIPTION_PARSE_FAILURE', [entry]);
      out.refs.add(`${m[1]!.toLowerCase()}/${m[2]}`);
    }
  }
  return out;
}

/**
 * The objects one event.from pass looks at: those changed after the token's generation, or, from
 * token "", the live objects of the subscribed classes and refs — never the whole pool for a
 * `task/<ref>` wait (xapi reads only the subscribed tables as well).
 */
function candidates(pool: PoolState, subs: Subscriptions, since: number): Iterable<ChangeEntry> {
  if (since >= 0) return pool.db.changedSince(since);
  if (subs.all) return pool.db.changes.values();
  const out = new Map<string, ChangeEntry>();
  const add = (ref: string) => {
    const e = pool.db.changes.get(ref);
    if (e) out.set(ref, e);
  };
  for (const c of EVENT_CLASSES)
    if (subs.cls.has(c.toLowerCase())) for (const ref of pool.db.table(c).keys()) add(ref);
  for (const r of subs.refs) add(r.slice(r.indexOf('/') + 1));
  return out.values();
}

export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function registerCore(reg: Registry): void {
  reg.add({
    name: 'session.login_with_password',
    params: [
      p('uname', 'string'),
      p('pwd', 'string'),
      p('version', 'string', '1.1'),
      p('originator', 'string', ''),
    ],
    session: false,
    handler: ({ pool, hostIndex }, [uname, pwd, , originator]) => {
      if (uname !== pool.username || pwd !== pool.password) {
        throw new XapiError('SESSION_AUTHENTICATION_FAILED', [String(uname), 'Authentication failure']);
      }
      return pool.login(hostIndex, String(originator));
    },
  });
  reg.add({
    name: 'session.logout',
    params: [],
    handler: ({ pool, session }) => {
      pool.db.destroy('session', session);
      return undefined;
    },
  });
  reg.add({
    name: 'system.listMethods',
    params: [],
    session: false,
    handler: () => {
      const names: string[] = [];
      for (const [n, d] of reg.methods) {
        names.push(n);
        if (d.async) names.push(`Async.${n}`);
      }
      return names.sort();
    },
  });

  // ---- task ----
  reg.add({
    name: 'task.create',
    params: [p('label', 'string'), p('description', 'string')],
    handler: ({ pool }, [label, description]) => pool.createTask(String(label), String(description)),
  });
  reg.add({
    name: 'task.destroy',
    params: [p('self', 'ref')],
    handler: ({ pool }, [t]) => {
      pool.db.destroy('task', self(pool, 'task', t));
      return undefined;
    },
  });
  reg.add({
    name: 'task.cancel',
    params: [p('task', 'ref')],
    async: true,
    handler: ({ pool }, [t]) => {
      const ref = self(pool, 'task', t);
      if (!pool.taskPending(ref)) throw new XapiError('OPERATION_NOT_ALLOWED', ['task is not pending']);
      pool.failTask(ref, new XapiError('TASK_CANCELLED', [ref]));
      return undefined;
    },
  });
  reg.add({
    name: 'task.set_progress',
    params: [p('self', 'ref'), p('value', 'float')],
    handler: ({ pool }, [t, v]) => {
      pool.setProgress(self(pool, 'task', t), Number(v));
      return undefined;
    },
  });
  reg.add({
    name: 'task.set_status',
    params: [p('self', 'ref'), p('value', 'string')],
    handler: ({ pool }, [t, v]) => {
      const ref = self(pool, 'task', t);
      pool.db.set('task', ref, 'status', String(v));
      return undefined;
    },
  });
  for (const f of ['result', 'error_info'] as const) {
    reg.add({
      name: `task.set_${f}`,
      params: [p('self', 'ref'), p('value', f === 'result' ? 'string' : 'strings')],
      handler: ({ pool }, [t, v]) => {
        pool.db.set('task', self(pool, 'task', t), f, v!);
        return undefined;
      },
    });
  }

  // ---- event ----
  reg.add({
    name: 'event.from',
    params: [p('classes', 'strings'), p('token', 'string'), p('timeout', 'float')],
    handler: async ({ pool }, [classes, token, timeout]) => {
      const subs = parseSubscriptions(classes as string[]);
      const tok = String(token);
      let since = -1;
      if (tok !== '') {
        const m = /^(\d+),(\d+)$/.exec(tok);
        if (!m) throw new XapiError('EVENT_FROM_TOKEN_PARSE_FAILURE', [tok]);
        since = Number(m[1]);
      }
      const matches = (cls: ClassName, ref: string): boolean =>
        cls !== 'session' &&
        (subs.all || subs.cls.has(cls.toLowerCase()) || subs.refs.has(`${cls.toLowerCase()}/${ref}`));
      const deadline = Date.now() + Math.max(0, Number(timeout)) * 1000;
      for (;;) {
        const events: XRecord[] = [];
        const gen = pool.db.gen;
        for (const c of candidates(pool, subs, since)) {
          if (!matches(c.cls, c.ref)) continue;
          if (since < 0) {
            if (c.deleted) continue;
          } else if (c.gen <= since) continue;
          const ev: XRecord = { id: String(c.gen), timestamp: '0.0', class: c.cls.toLowerCase(), ref: c.ref };
          if (c.deleted) {
            if (since >= 0 && c.created > since) continue;
            ev.operation = 'del';
          } else {
            ev.operation = since < 0 || c.created > since ? 'add' : 'mod';
            ev.snapshot = cloneValue(pool.db.get(c.cls, c.ref));
          }
          events.push(ev);
        }
        const remaining = deadline - Date.now();
        if (events.length > 0 || remaining <= 0) {
          const counts: Record<string, XValue> = {};
          for (const c of EVENT_CLASSES) {
            if (subs.all || subs.cls.has(c.toLowerCase()))
              counts[c.toLowerCase()] = new XInt32(pool.db.table(c).size);
          }
          return { events, valid_ref_counts: counts, token: `${pad20(gen)},${pad20(0)}` };
        }
        const ac = new AbortController();
        await Promise.race([
          pool.db.nextChange(),
          sleep(remaining, undefined, { signal: ac.signal }).catch(() => {}),
        ]);
        ac.abort();
      }
    },
  });
  reg.add({
    name: 'event.inject',
    params: [p('class', 'string'), p('ref', 'string')],
    handler: ({ pool }, [cls, ref]) => {
      const c = CLASSES.find((x) => x.toLowerCase() === String(cls).toLowerCase());
      if (!c) throw new XapiError('HANDLE_INVALID', [String(cls), String(ref)]);
      pool.db.touch(c, self(pool, c, ref));
      return `${pad20(pool.db.gen)},${pad20(0)}`;
    },
  });

  // ---- host / SR ----
  reg.add({
    name: 'host.get_server_certificate',
    params: [p('host', 'ref')],
    handler: ({ pool }, [h]) => {
      self(pool, 'host', h);
      return pool.certificate ?? '';
    },
  });
  reg.add({
    name: 'SR.scan',
    params: [p('sr', 'ref')],
    async: true,
    handler: ({ pool }, [sr]) => {
      self(pool, 'SR', sr);
      return undefined;
    },
  });
  reg.add({
    name: 'SR.get_supported_types',
    params: [],
    handler: () => ['ext', 'nfs', 'lvm', 'lvmoiscsi', 'lvmohba', 'iso', 'udev', 'xfs'],
  });

  // ---- VBD ----
  reg.add({
    name: 'VBD.create',
    params: [p('args', 'record')],
    async: true,
    handler: ({ pool }, [args]) => {
      const rec = constructorFields('VBD', args as XRecord);
      const vm = self(pool, 'VM', rec.VM!);
      const empty = rec.empty === true;
      if (!empty || rec.VDI !== NULL_REF) {
        const vdi = self(pool, 'VDI', rec.VDI!);
        if (rec.mode === 'RW' && pool.db.get('VDI', vdi).read_only === true)
          throw new XapiError('VDI_READONLY', [vdi]);
      }
      if (empty && rec.type !== 'CD') throw new XapiError('VBD_NOT_REMOVABLE_MEDIA', ['in constructor']);
      if (rec.type === 'CD' && rec.mode !== 'RO') throw new XapiError('VBD_CDS_MUST_BE_READONLY', []);
      const used = new Set(
        (pool.db.get('VM', vm).VBDs as string[]).map((v) => pool.db.get('VBD', v).userdevice),
      );
      let dev = String(rec.userdevice);
      if (dev === 'autodetect') {
        let n = 0;
        while (used.has(String(n))) n++;
        dev = String(n);
      } else if (!/^\d+$/.test(dev)) {
        throw new XapiError('INVALID_DEVICE', [dev]);
      } else if (used.has(dev)) {
        throw new XapiError('DEVICE_ALREADY_EXISTS', [dev]);
      }
      return pool.db.create('VBD', { ...rec, userdevice: dev, currently_attached: false });
    },
  });
  reg.add({
    name: 'VBD.destroy',
    params: [p('self', 'ref')],
    async: true,
    handler: ({ pool }, [v]) => {
      const ref = self(pool, 'VBD', v);
      const vbd = pool.db.get('VBD', ref);
      // xapi_vbd_helpers.destroy: the user must unplug first
      if (vbd.currently_attached === true) {
        const vm = pool.db.get('VM', vbd.VM as string).uuid as string;
        throw new XapiError('OPERATION_NOT_ALLOWED', [`VBD '${vbd.uuid}' still attached to '${vm}'`]);
      }
      pool.db.destroy('VBD', ref);
      return undefined;
    },
  });
  for (const [op, attached] of [
    ['plug', true],
    ['unplug', false],
    ['unplug_force', false],
  ] as const) {
    reg.add({
      name: `VBD.${op}`,
      params: [p('self', 'ref')],
      async: true,
      handler: ({ pool }, [v]) => {
        const ref = self(pool, 'VBD', v);
        const vm = pool.db.get('VM', pool.db.get('VBD', ref).VM as string);
        if (vm.power_state !== 'Running') {
          throw new XapiError('VM_BAD_POWER_STATE', [
            pool.db.get('VBD', ref).VM as string,
            'running',
            String(vm.power_state).toLowerCase(),
          ]);
        }
        pool.db.set('VBD', ref, 'currently_attached', attached);
        return undefined;
      },
    });
  }

  // ---- VIF ----
  reg.add({
    name: 'VIF.create',
    params: [p('args', 'record')],
    async: true,
    handler: ({ pool }, [args]) => {
      const rec = constructorFields('VIF', args as XRecord);
      self(pool, 'VM', rec.VM!);
      self(pool, 'network', rec.network!);
      const auto = rec.MAC === '';
      return pool.db.create('VIF', { ...rec, MAC: auto ? randomMac() : rec.MAC!, MAC_autogenerated: auto });
    },
  });
}
