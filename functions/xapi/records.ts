/**
 * Typed XAPI records (the fields replication needs; unknown extra fields are kept as they come)
 * and their normalisation: XML-RPC sends 64-bit ints as decimal strings and JSON-RPC as numbers,
 * datetimes as `YYYYMMDDTHH:MM:SSZ` strings or dateTime values. After `normaliseRecord` int fields
 * are JS numbers and datetime fields are `Date`s, whichever transport was used.
 */
import { parseXapiDate } from './marshal.js';

export type Ref = string;
export type StringMap = Record<string, string>;

interface Common {
  uuid: string;
  other_config: StringMap;
  [extra: string]: unknown;
}

export interface PoolRecord extends Common {
  name_label: string;
  master: Ref;
  default_SR: Ref;
  tags: string[];
  restrictions: StringMap;
}

export interface HostRecord extends Common {
  name_label: string;
  hostname: string;
  address: string;
  enabled: boolean;
  PBDs: Ref[];
  tags: string[];
}

export interface SrRecord extends Common {
  name_label: string;
  type: string;
  content_type: string;
  physical_size: number;
  physical_utilisation: number;
  virtual_allocation: number;
  shared: boolean;
  PBDs: Ref[];
  VDIs: Ref[];
  sm_config: StringMap;
  tags: string[];
}

export interface PbdRecord extends Common {
  host: Ref;
  SR: Ref;
  currently_attached: boolean;
  device_config: StringMap;
}

export type PowerState = 'Halted' | 'Paused' | 'Running' | 'Suspended';

export interface VmRecord extends Common {
  name_label: string;
  name_description: string;
  power_state: PowerState;
  is_a_template: boolean;
  is_default_template: boolean;
  is_a_snapshot: boolean;
  is_control_domain: boolean;
  snapshot_of: Ref;
  snapshots: Ref[];
  snapshot_time: Date;
  snapshot_info: StringMap;
  parent: Ref;
  resident_on: Ref;
  VBDs: Ref[];
  VIFs: Ref[];
  tags: string[];
  blocked_operations: StringMap;
  memory_static_min: number;
  memory_static_max: number;
  memory_dynamic_min: number;
  memory_dynamic_max: number;
  VCPUs_max: number;
  VCPUs_at_startup: number;
  VCPUs_params: StringMap;
  platform: StringMap;
  HVM_boot_params: StringMap;
  HVM_boot_policy: string;
  domain_type: string;
  VTPMs: Ref[];
  NVRAM: StringMap;
  bios_strings: StringMap;
  has_vendor_device: boolean;
  generation_id: string;
  xenstore_data: StringMap;
  hardware_platform_version: number;
}

export interface VtpmRecord extends Common {
  VM: Ref;
  is_unique: boolean;
  is_protected: boolean;
  persistence_backend: string;
}

export type VdiType =
  | 'system'
  | 'user'
  | 'ephemeral'
  | 'suspend'
  | 'crashdump'
  | 'ha_statefile'
  | 'metadata'
  | 'redo_log'
  | 'rrd'
  | 'pvs_cache'
  | 'cbt_metadata';

export interface VdiRecord extends Common {
  name_label: string;
  name_description: string;
  SR: Ref;
  VBDs: Ref[];
  virtual_size: number;
  physical_utilisation: number;
  type: VdiType;
  sharable: boolean;
  read_only: boolean;
  is_a_snapshot: boolean;
  snapshot_of: Ref;
  snapshots: Ref[];
  snapshot_time: Date;
  cbt_enabled: boolean;
  sm_config: StringMap;
  tags: string[];
}

export interface VbdRecord extends Common {
  VM: Ref;
  VDI: Ref;
  device: string;
  userdevice: string;
  bootable: boolean;
  mode: 'RO' | 'RW';
  type: 'CD' | 'Disk' | 'Floppy';
  empty: boolean;
  currently_attached: boolean;
}

export interface VifRecord extends Common {
  device: string;
  network: Ref;
  VM: Ref;
  MAC: string;
  MTU: number;
  currently_attached: boolean;
  locking_mode: 'network_default' | 'locked' | 'unlocked' | 'disabled';
  ipv4_allowed: string[];
  ipv6_allowed: string[];
}

export interface NetworkRecord extends Common {
  name_label: string;
  bridge: string;
  MTU: number;
  purpose: string[];
  VIFs: Ref[];
  PIFs: Ref[];
  tags: string[];
}

export type TaskStatus = 'pending' | 'success' | 'failure' | 'cancelling' | 'cancelled';

export interface TaskRecord extends Common {
  name_label: string;
  name_description: string;
  status: TaskStatus;
  progress: number;
  result: string;
  error_info: string[];
  created: Date;
  finished: Date;
  resident_on: Ref;
  allowed_operations: string[];
}

/** A storage driver. `supported_image_formats` came with XCP-ng 8.3's qcow2 work (absent on older hosts); [] = the driver decides. */
export interface SmRecord extends Common {
  name_label: string;
  type: string;
  supported_image_formats?: string[];
}

export interface XapiRecords {
  pool: PoolRecord;
  SM: SmRecord;
  host: HostRecord;
  SR: SrRecord;
  PBD: PbdRecord;
  VM: VmRecord;
  VDI: VdiRecord;
  VBD: VbdRecord;
  VIF: VifRecord;
  VTPM: VtpmRecord;
  network: NetworkRecord;
  task: TaskRecord;
}

export type XapiClass = keyof XapiRecords;

const INT_FIELDS: Partial<Record<XapiClass, readonly string[]>> = {
  SR: ['physical_size', 'physical_utilisation', 'virtual_allocation'],
  VM: [
    'memory_static_min',
    'memory_static_max',
    'memory_dynamic_min',
    'memory_dynamic_max',
    'memory_overhead',
    'memory_target',
    'VCPUs_max',
    'VCPUs_at_startup',
    'user_version',
    'domid',
    'hardware_platform_version',
  ],
  VDI: ['virtual_size', 'physical_utilisation'],
  VIF: ['MTU'],
  network: ['MTU'],
  host: ['API_version_major', 'API_version_minor'],
};
const FLOAT_FIELDS: Partial<Record<XapiClass, readonly string[]>> = { task: ['progress'] };
const DATE_FIELDS: Partial<Record<XapiClass, readonly string[]>> = {
  VM: ['snapshot_time'],
  VDI: ['snapshot_time'],
  task: ['created', 'finished'],
};

function toNumber(v: unknown): unknown {
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isNaN(n) ? v : n;
  }
  return v;
}

function toDate(v: unknown): unknown {
  if (typeof v === 'string') return parseXapiDate(v) ?? v;
  return v;
}

/** Converts a raw record (either transport) to its typed form; a new object, extra fields kept. */
export function normaliseRecord<K extends XapiClass>(cls: K, raw: unknown): XapiRecords[K] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TypeError(`${cls} record is not a struct`);
  }
  const rec: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const f of INT_FIELDS[cls] ?? []) if (f in rec) rec[f] = toNumber(rec[f]);
  for (const f of FLOAT_FIELDS[cls] ?? []) if (f in rec) rec[f] = toNumber(rec[f]);
  for (const f of DATE_FIELDS[cls] ?? []) if (f in rec) rec[f] = toDate(rec[f]);
  return rec as XapiRecords[K];
}

const CLASSES: readonly XapiClass[] = [
  'pool',
  'host',
  'SR',
  'PBD',
  'VM',
  'VDI',
  'VBD',
  'VIF',
  'network',
  'task',
];

/** The class name as XAPI spells it in method names, from any case (event.from uses lower case). */
export function canonicalClass(name: string): XapiClass | undefined {
  const lower = name.toLowerCase();
  return CLASSES.find((k) => k.toLowerCase() === lower);
}
