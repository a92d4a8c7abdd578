/**
 * The VTPM class as xapi implements it (xapi_vtpm.ml, message_forwarding.ml, xapi_vm_lifecycle.ml):
 * at most one per VM, created only while the VM is halted, contents kept as a secret that is
 * never part of the record (get_record omits it) and copied by VM.clone/snapshot unless is_unique.
 */
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import { self } from './implicit.js';
import { p, type Registry } from './registry.js';
import { checkVmOperation } from './vm-admission.js';

/** The secrets (VTPM.contents), outside the records so no getter or event can leak them. */
const secrets = new WeakMap<PoolState, Map<string, string>>();
function store(pool: PoolState): Map<string, string> {
  let m = secrets.get(pool);
  if (!m) {
    m = new Map();
    secrets.set(pool, m);
  }
  return m;
}

export function vtpmContents(pool: PoolState, vtpm: string): string {
  return store(pool).get(vtpm) ?? '';
}

/** Xapi_vtpm.introduce: a new VTPM record and its secret. */
export function introduceVtpm(pool: PoolState, vm: string, isUnique: boolean, contents = ''): string {
  const ref = pool.db.create('VTPM', {
    VM: vm,
    is_unique: isUnique,
    allowed_operations: pool.db.get('VM', vm).power_state === 'Halted' ? ['destroy'] : [],
  });
  store(pool).set(ref, contents);
  return ref;
}

/** Xapi_vtpm.copy (clone/snapshot/copy): contents travel unless the VTPM is unique. */
export function copyVtpms(pool: PoolState, from: string, to: string): void {
  for (const v of pool.db.get('VM', from).VTPMs as string[]) {
    const rec = pool.db.get('VTPM', v);
    const unique = rec.is_unique === true;
    introduceVtpm(pool, to, unique, unique ? '' : vtpmContents(pool, v));
  }
}

export function destroyVtpm(pool: PoolState, vtpm: string): void {
  store(pool).delete(vtpm);
  pool.db.destroy('VTPM', vtpm);
}

/** xapi_vtpm.assert_not_restricted: only an explicit "false" lets a pool hold a VTPM. */
function assertNotRestricted(pool: PoolState): void {
  const restrictions = pool.db.get('pool', pool.poolRef).restrictions as Record<string, string>;
  if (restrictions.restrict_vtpm !== 'false') throw new XapiError('FEATURE_RESTRICTED', ['restrict_vtpm']);
}

/** Base64 as Base64.decode accepts it (padding required, standard alphabet). */
function assertBase64(s: string): void {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    throw new XapiError('INTERNAL_ERROR', ['Base64.decode: invalid input']);
  }
}

export function registerVtpm(reg: Registry): void {
  reg.add({
    name: 'VTPM.create',
    params: [p('vM', 'ref'), p('is_unique', 'bool')],
    async: true,
    handler: ({ pool }, [vm, isUnique]) => {
      const ref = self(pool, 'VM', vm);
      // with_vm_operation create_vtpm (blocked, power, template, snapshot, VTPM count) ...
      checkVmOperation(pool, ref, 'create_vtpm');
      // ... then Xapi_vtpm.create' (licence restriction first).
      assertNotRestricted(pool);
      return introduceVtpm(pool, ref, isUnique === true);
    },
  });
  reg.add({
    name: 'VTPM.destroy',
    params: [p('self', 'ref')],
    async: true,
    handler: ({ pool }, [v]) => {
      const ref = self(pool, 'VTPM', v);
      const vm = pool.db.get('VTPM', ref).VM as string;
      const ps = String(pool.db.get('VM', vm).power_state);
      // assert_initial_power_state_in: lower-case states joined by ';'
      if (ps !== 'Halted' && ps !== 'Suspended') {
        throw new XapiError('VM_BAD_POWER_STATE', [vm, 'halted;suspended', ps.toLowerCase()]);
      }
      destroyVtpm(pool, ref);
      return undefined;
    },
  });
  reg.add({
    name: 'VTPM.get_contents',
    params: [p('self', 'ref')],
    handler: ({ pool }, [v]) => vtpmContents(pool, self(pool, 'VTPM', v)),
  });
  reg.add({
    name: 'VTPM.set_contents',
    params: [p('self', 'ref'), p('contents', 'string')],
    handler: ({ pool }, [v, contents]) => {
      const ref = self(pool, 'VTPM', v);
      assertBase64(String(contents));
      store(pool).set(ref, String(contents));
      return undefined;
    },
  });
}
