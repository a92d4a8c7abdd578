/** VDI messages and the disk-level helpers VM.snapshot/clone/copy share. */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { dropCbtLog, snapshotCbtLog } from '../cbt-log.js';
import { Disk } from '../disk.js';
import { SR_FULL_ERROR, XapiError } from '../errors.js';
import { PoolState } from '../state.js';
import { assertChainRoom, insertBaseCopy, leafSmConfig, releaseCharge } from '../storage/chain.js';
import { assertFormatHolds, chooseImageFormat, IMAGE_FORMAT } from '../storage/formats.js';
import type { Mark } from '../storage/ops.js';
import { isThick } from '../storage/settings.js';
import { EPOCH, NULL_REF, type XRecord, type XValue } from '../wire/values.js';
import { constructorFields, self } from './implicit.js';
import { p, type Registry } from './registry.js';

/** VDI_IN_USE when a VBD of the VDI is attached (RW only, when `rwOnly`). */
export function assertNotInUse(pool: PoolState, vdi: string, op: string, rwOnly = false): void {
  for (const v of pool.db.get('VDI', vdi).VBDs as string[]) {
    const vbd = pool.db.find('VBD', v);
    if (vbd?.currently_attached === true && (!rwOnly || vbd.mode === 'RW'))
      throw new XapiError('VDI_IN_USE', [vdi, op]);
  }
}

export function createVdi(pool: PoolState, sr: string, fields: XRecord, disk?: Disk): string {
  self(pool, 'SR', sr);
  const size = PoolState.roundSize(Number(fields.virtual_size ?? 0));
  const store = pool.store(sr);
  if (!disk && size > store.free()) throw SR_FULL_ERROR();
  const d = disk ?? new Disk(store, size);
  // a new image gets its format from SM; snapshots, clones and copies keep their source's sm_config
  const format = disk ? undefined : chooseImageFormat(pool, sr, (fields.sm_config as XRecord) ?? {}, size);
  const ref = pool.db.create('VDI', {
    ...fields,
    ...(format ? { sm_config: { ...(fields.sm_config as XRecord), [IMAGE_FORMAT]: format } } : {}),
    SR: sr,
    virtual_size: size,
    physical_utilisation: d.blocks.size * 2 * 1024 * 1024,
    location: randomUUID(),
    allowed_operations: [
      'clone',
      'copy',
      'resize',
      'snapshot',
      'destroy',
      'update',
      'generate_config',
      'enable_cbt',
    ],
  });
  pool.disks.set(ref, d);
  pool.syncVdi(ref);
  return ref;
}

const INHERITED = [
  'name_label',
  'name_description',
  'type',
  'sharable',
  'read_only',
  'other_config',
  'xenstore_data',
  'on_boot',
  'allow_caching',
  'tags',
  'cbt_enabled',
  'sm_config',
];

function inherited(src: XRecord): XRecord {
  const out: XRecord = {};
  for (const k of INHERITED) {
    const v = src[k];
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? [...v] : typeof v === 'object' && !(v instanceof Date) ? { ...v } : v;
  }
  return out;
}

function assertHasData(pool: PoolState, vdi: string): void {
  if (pool.db.get('VDI', vdi).type === 'cbt_metadata')
    throw new XapiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'cbt_metadata']);
}

export function snapshotVdi(pool: PoolState, vdi: string): string {
  assertHasData(pool, vdi);
  const src = pool.db.get('VDI', vdi);
  if (src.sharable === true) throw new XapiError('VDI_IS_SHARABLE', [vdi]);
  assertChainRoom(pool, vdi);
  const d = pool.disk(vdi);
  const fields = inherited(src);
  const base = insertBaseCopy(pool, vdi);
  const ref = createVdi(
    pool,
    src.SR as string,
    {
      ...fields,
      ...(base ? { sm_config: leafSmConfig(src, base) } : {}),
      virtual_size: d.size,
      is_a_snapshot: true,
      snapshot_of: vdi,
      snapshot_time: new Date(),
    },
    d.share(),
  );
  snapshotCbtLog(pool, vdi, ref);
  return ref;
}

export function cloneVdi(pool: PoolState, vdi: string): string {
  assertHasData(pool, vdi);
  const src = pool.db.get('VDI', vdi);
  assertChainRoom(pool, vdi);
  const d = pool.disk(vdi);
  const fields = inherited(src);
  // thick LVM: the clone's own leaf is a full-size LV (the snapshot leaf of VDI.snapshot is thin)
  const leafCharge = isThick(pool.db.get('SR', src.SR as string).type) ? d.size : 0;
  d.store.charge(leafCharge);
  let base: string | undefined;
  try {
    base = insertBaseCopy(pool, vdi);
  } catch (e) {
    d.store.uncharge(leafCharge);
    throw e;
  }
  const ref = createVdi(
    pool,
    src.SR as string,
    {
      ...fields,
      ...(base ? { sm_config: leafSmConfig(src, base) } : {}),
      virtual_size: d.size,
      is_a_snapshot: false,
      snapshot_of: NULL_REF,
      snapshot_time: EPOCH,
      // SM's clone passes no CBT log (VDI.py: only snapshot does): the clone starts without CBT
      cbt_enabled: false,
    },
    d.share(),
  );
  if (leafCharge) pool.storage.charges.set(ref, leafCharge);
  return ref;
}

export function copyVdi(pool: PoolState, vdi: string, sr: string): string {
  assertHasData(pool, vdi);
  const src = pool.db.get('VDI', vdi);
  const d = pool.disk(vdi);
  const copy = d.copyTo(pool.store(sr));
  // a copy is a new, flat VHD: no parent
  const fields = { ...inherited(src), sm_config: leafSmConfig(src, undefined) };
  return createVdi(pool, sr, { ...fields, virtual_size: d.size, cbt_enabled: false }, copy);
}

export function destroyVdiData(pool: PoolState, vdi: string): void {
  const rec = pool.db.get('VDI', vdi);
  releaseCharge(pool, vdi);
  for (const v of [...(rec.VBDs as string[])]) pool.db.destroy('VBD', v);
  pool.disks.get(vdi)?.release();
  pool.disks.delete(vdi);
  pool.cbtMetadata.delete(vdi);
  dropCbtLog(pool, vdi);
  pool.db.destroy('VDI', vdi);
  pool.syncSr(rec.SR as string);
}

/** VDI.copy's work: a new VDI on `sr`, or the blocks (changed since `base`) into `into`. */
function copyInto(pool: PoolState, ref: string, sr: XValue, base: XValue, into: XValue): string {
  const src = pool.disk(ref);
  if (into === NULL_REF) {
    const target = sr === NULL_REF ? (pool.db.get('VDI', ref).SR as string) : self(pool, 'SR', sr);
    return copyVdi(pool, ref, target);
  }
  const dst = self(pool, 'VDI', into);
  const drec = pool.db.get('VDI', dst);
  if (drec.read_only === true) throw new XapiError('VDI_READONLY', [dst]);
  const dd = pool.disk(dst);
  if (dd.size < src.size) throw new XapiError('VDI_TOO_SMALL', [dst, String(src.size)]);
  const blocks = base === NULL_REF ? src.allocated() : src.diff(pool.disk(self(pool, 'VDI', base)));
  for (const i of blocks) dd.copyBlockFrom(src, i);
  pool.syncVdi(dst);
  return dst;
}

const srMark = (ref: string, op: string): Mark => ({ cls: 'SR', ref, op });
const vdiMark = (ref: string, op: string): Mark => ({ cls: 'VDI', ref, op });

/**
 * xapi's with_sr_andor_vdi: the objects are marked for the operation's duration (`opMs` in the
 * simulator); a conflicting operation waits for them, retried by xapi itself, so VDI operations
 * on one SR run one at a time.
 */
function storageOp<T>(pool: PoolState, task: string | undefined, marks: Mark[], fn: () => T): Promise<T> {
  return pool.storage.ops.run(marks, task, async () => {
    const ms = pool.storage.settings.opMs;
    if (ms > 0) await sleep(ms);
    return fn();
  });
}

/**
 * VM.snapshot / clone / copy run a VDI operation per disk: its SR and VDI are marked meanwhile
 * (a copy marks only the VDI), after the VM-level checks, which therefore fail at once.
 */
export function withVmDiskOps<T>(
  pool: PoolState,
  task: string | undefined,
  vm: string,
  op: 'snapshot' | 'clone' | 'copy',
  fn: () => T,
): Promise<T> {
  const marks: Mark[] = [];
  for (const v of pool.db.get('VM', vm).VBDs as string[]) {
    const vdi = pool.db.find('VBD', v)?.VDI as string | undefined;
    const rec = vdi ? pool.db.find('VDI', vdi) : undefined;
    if (!vdi || !rec || pool.db.get('VBD', v).type !== 'Disk') continue;
    if (op !== 'copy') marks.push(srMark(rec.SR as string, `vdi_${op}`));
    marks.push(vdiMark(vdi, op));
  }
  return storageOp(pool, task, [...new Map(marks.map((m) => [`${m.cls}${m.ref}`, m])).values()], fn);
}

export function registerVdi(reg: Registry): void {
  reg.add({
    name: 'VDI.create',
    params: [p('args', 'record')],
    async: true,
    handler: ({ pool, task }, [args]) => {
      const rec = constructorFields('VDI', args as XRecord);
      const sr = self(pool, 'SR', rec.SR!);
      return storageOp(pool, task, [{ cls: 'SR', ref: sr, op: 'vdi_create' }], () =>
        createVdi(pool, sr, rec),
      );
    },
  });
  reg.add({
    name: 'VDI.destroy',
    params: [p('self', 'ref')],
    async: true,
    handler: ({ pool, task }, [vdi]) => {
      const ref = self(pool, 'VDI', vdi);
      if (pool.db.get('VDI', ref).managed === false) throw new XapiError('VDI_NOT_MANAGED', [ref]);
      assertNotInUse(pool, ref, 'destroy');
      const sr = pool.db.get('VDI', ref).SR as string;
      return storageOp(pool, task, [srMark(sr, 'vdi_destroy'), vdiMark(ref, 'destroy')], () => {
        destroyVdiData(pool, ref);
        // SM kicks the SR's garbage collector after every delete
        pool.storage.gc.kick(sr);
        return undefined;
      });
    },
  });
  reg.add({
    name: 'VDI.snapshot',
    params: [p('vdi', 'ref'), p('driver_params', 'map', {})],
    async: true,
    handler: ({ pool, task }, [vdi]) => {
      const ref = self(pool, 'VDI', vdi);
      const sr = pool.db.get('VDI', ref).SR as string;
      return storageOp(pool, task, [srMark(sr, 'vdi_snapshot'), vdiMark(ref, 'snapshot')], () =>
        snapshotVdi(pool, ref),
      );
    },
  });
  reg.add({
    name: 'VDI.clone',
    params: [p('vdi', 'ref'), p('driver_params', 'map', {})],
    async: true,
    handler: ({ pool, task }, [vdi]) => {
      const ref = self(pool, 'VDI', vdi);
      const sr = pool.db.get('VDI', ref).SR as string;
      return storageOp(pool, task, [srMark(sr, 'vdi_clone'), vdiMark(ref, 'clone')], () =>
        cloneVdi(pool, ref),
      );
    },
  });
  reg.add({
    name: 'VDI.copy',
    params: [
      p('vdi', 'ref'),
      p('sr', 'ref', NULL_REF),
      p('base_vdi', 'ref', NULL_REF),
      p('into_vdi', 'ref', NULL_REF),
    ],
    async: true,
    handler: ({ pool, task }, [vdi, sr, base, into]) => {
      const ref = self(pool, 'VDI', vdi);
      assertNotInUse(pool, ref, 'copy', true);
      return storageOp(pool, task, [vdiMark(ref, 'copy')], () => copyInto(pool, ref, sr!, base!, into!));
    },
  });
  for (const name of ['resize', 'resize_online']) {
    reg.add({
      name: `VDI.${name}`,
      params: [p('vdi', 'ref'), p('size', 'int')],
      async: true,
      handler: ({ pool }, [vdi, size]) => {
        const ref = self(pool, 'VDI', vdi);
        if (name === 'resize') assertNotInUse(pool, ref, 'resize');
        const d = pool.disk(ref);
        const n = PoolState.roundSize(Number(size));
        if (n < d.size)
          throw new XapiError('SR_BACKEND_FAILURE_79', ['', 'VDI Invalid size', 'shrinking is not allowed']);
        assertFormatHolds(pool, ref, n);
        if (n - d.size > pool.store(pool.db.get('VDI', ref).SR as string).free()) throw SR_FULL_ERROR();
        d.resize(n);
        pool.syncVdi(ref);
        return undefined;
      },
    });
  }
}
