/** Everything one simulated pool holds, shared by its hosts' listeners and the test API. */
import { randomBytes } from 'node:crypto';
import { Db } from './db.js';
import { GroupIndex } from './db-index.js';
import { BLOCK_SIZE, type Block, BlockStore, type Disk } from './disk.js';
import { toDescription, XapiError } from './errors.js';
import { Faults } from './faults.js';
import { Guests } from './guest.js';
import type { ClassName } from './schema.js';
import type { Operations } from './storage/ops.js';
import type { StorageSettings } from './storage/settings.js';
import { NULL_REF, toXmlString, XFloat, type XValue } from './wire/values.js';

/** Where a VDI's CBT log sits (cbt-log.ts). */
export interface CbtLog {
  chain: number;
  /** position in the chain: later logs have larger numbers */
  seq: number;
}

export interface HostState {
  ref: string;
  uuid: string;
  address: string;
  url: string;
}

export type NbdMode = 'forced-tls' | 'no-tls';

/** The hosts' NBD listeners as VDI.get_nbd_info uses them (nbd-hosts.ts implements them). */
/**
 * The pool's storage behaviour as the API sees it (a port: sim/storage/index.ts implements it, so
 * this module needs nothing that imports it back).
 */
export interface PoolStorageBehaviour {
  settings: StorageSettings;
  readonly ops: Operations;
  readonly gc: {
    kick(sr: string): void;
    pending(sr: string): boolean;
    settle(): Promise<void>;
    close(): void;
  };
  /** thick-provisioning space held by a VDI beyond its blocks (LVM SRs) */
  readonly charges: Map<string, number>;
}

export interface NbdListeners {
  /** The mode the networks' purposes select, or none when no usable server would run. */
  mode(): NbdMode | undefined;
  /** The port of host `hostIndex`'s listener, started (or restarted in `mode`) on demand. */
  port(hostIndex: number, mode: NbdMode): Promise<number>;
  close(): Promise<void>;
}

export class PoolState {
  readonly db = new Db();
  /** VDIs per SR with the sum of their virtual sizes (the SR's virtual_allocation) */
  readonly vdisBySr = new GroupIndex(
    this.db,
    'VDI',
    (r) => r.SR as string,
    (r) => Number(r.virtual_size ?? 0),
  );
  readonly disks = new Map<string, Disk>();
  /** block identities kept by VDI.data_destroy (CBT metadata only) */
  readonly cbtMetadata = new Map<string, Map<number, Block>>();
  /** each tracked VDI's CBT log position (cbt-log.ts) */
  readonly cbtLogs = new Map<string, CbtLog>();
  readonly stores = new Map<string, BlockStore>();
  readonly hosts: HostState[] = [];
  readonly faults = new Faults();
  /** Body bytes sent by export_raw_vdi so far (what crossed the wire from this pool). */
  exportedBytes = 0;
  /** Body bytes received by import_raw_vdi so far (what crossed the wire into this pool). */
  importedBytes = 0;
  readonly callLog: string[] = [];
  readonly guests = new Guests();
  /** RAM of each host, for VM.start's free-memory check. */
  hostMemoryBytes = 256 * 1024 ** 3;
  masterIndex = 0;
  poolRef = NULL_REF;
  scheme: 'http' | 'https' = 'http';
  certificate: string | undefined;
  /** set by startPool: the hosts' NBD listeners */
  nbd: NbdListeners | undefined;
  /** set by startPool: chains, garbage collection, operation marks */
  storage!: PoolStorageBehaviour;

  constructor(
    readonly name: string,
    readonly username: string,
    readonly password: string,
  ) {}

  get master(): HostState {
    return this.hosts[this.masterIndex]!;
  }

  /** Round up to the 2 MiB multiple VHD SRs use (minimum one block). */
  static roundSize(n: number): number {
    return Math.max(BLOCK_SIZE, Math.ceil(n / BLOCK_SIZE) * BLOCK_SIZE);
  }

  store(srRef: string): BlockStore {
    const s = this.stores.get(srRef);
    if (!s) throw new XapiError('HANDLE_INVALID', ['SR', srRef]);
    return s;
  }

  addStore(srRef: string, capacity: number): BlockStore {
    const st = new BlockStore(capacity);
    st.onChange = () => {
      const rec = this.db.find('SR', srRef);
      if (!rec) return;
      rec.physical_utilisation = st.used;
      this.db.touch('SR', srRef);
    };
    this.stores.set(srRef, st);
    return st;
  }

  disk(vdiRef: string): Disk {
    const d = this.disks.get(vdiRef);
    if (!d) throw new XapiError('HANDLE_INVALID', ['VDI', vdiRef]);
    return d;
  }

  /** Refresh the derived size fields of a VDI and its SR after a content or size change. */
  syncVdi(vdiRef: string): void {
    const rec = this.db.find('VDI', vdiRef);
    const d = this.disks.get(vdiRef);
    if (!rec || !d) return;
    rec.physical_utilisation = d.blocks.size * BLOCK_SIZE;
    rec.virtual_size = d.size;
    this.db.touch('VDI', vdiRef);
    this.syncSr(rec.SR as string);
  }

  syncSr(srRef: string): void {
    const sr = this.db.find('SR', srRef);
    if (!sr) return;
    sr.virtual_allocation = this.vdisBySr.sum(srRef);
    sr.physical_utilisation = this.stores.get(srRef)?.used ?? 0;
    this.db.touch('SR', srRef);
  }

  /** The host a VDI's data must be served from: undefined when its SR is shared (any host). */
  hostForSr(srRef: string): number | undefined {
    const sr = this.db.find('SR', srRef);
    if (!sr || sr.shared) return undefined;
    const pbd = (sr.PBDs as string[])[0];
    const host = pbd ? (this.db.find('PBD', pbd)?.host as string) : undefined;
    const idx = this.hosts.findIndex((h) => h.ref === host);
    return idx < 0 ? undefined : idx;
  }

  // ---- tasks ----

  createTask(label: string, description = '', session?: string): string {
    return this.db.create('task', {
      name_label: label,
      name_description: description,
      status: 'pending',
      progress: new XFloat(0),
      created: new Date(),
      resident_on: this.master.ref,
      allowed_operations: ['cancel', 'destroy'],
      other_config: {},
      ...(session ? {} : {}),
    });
  }

  taskPending(ref: string): boolean {
    return this.db.find('task', ref)?.status === 'pending';
  }

  setProgress(ref: string, p: number): void {
    const t = this.db.find('task', ref);
    if (t?.status !== 'pending') return;
    t.progress = new XFloat(p);
    this.db.touch('task', ref);
  }

  /** Status leaves pending only once: later completions are ignored. */
  completeTask(ref: string, value: XValue | undefined): void {
    const t = this.db.find('task', ref);
    if (t?.status !== 'pending') return;
    t.status = 'success';
    t.progress = new XFloat(1);
    t.result = value === undefined ? '' : toXmlString(value);
    t.finished = new Date();
    t.allowed_operations = ['destroy'];
    this.db.touch('task', ref);
  }

  failTask(ref: string, err: unknown): void {
    const t = this.db.find('task', ref);
    if (t?.status !== 'pending') return;
    const desc = toDescription(err);
    t.status = desc[0] === 'TASK_CANCELLED' ? 'cancelled' : 'failure';
    t.progress = new XFloat(1);
    t.error_info = desc;
    t.finished = new Date();
    t.allowed_operations = ['destroy'];
    this.db.touch('task', ref);
  }

  // ---- sessions ----

  login(hostIndex: number, originator: string): string {
    const ref = `OpaqueRef:${randomBytes(16)
      .toString('hex')
      .replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-')}`;
    this.db.create(
      'session',
      {
        this_host: this.hosts[hostIndex]!.ref,
        last_active: new Date(),
        validation_time: new Date(),
        originator,
        auth_user_name: this.username,
      },
      ref,
    );
    return ref;
  }

  validSession(ref: unknown): ref is string {
    return typeof ref === 'string' && this.db.has('session', ref);
  }

  objectsOf(cls: ClassName): string[] {
    return [...this.db.table(cls).keys()];
  }
}
