/**
 * The subset of the XAPI datamodel the simulator serves: per class, each field's type, whether it
 * has a setter (rw), whether the constructor requires it (req), and its default.
 * Implicit messages (get_/set_/add_to_/...) are generated from this table.
 */
import { EPOCH, NULL_REF, XFloat, type XRecord, type XValue } from './wire/values.js';

export type FieldType = 'string' | 'int' | 'float' | 'bool' | 'datetime' | 'ref' | 'refs' | 'strings' | 'map';
export interface FieldSpec {
  t: FieldType;
  rw?: boolean;
  req?: boolean;
  /** settable through the constructor record even though it has no setter */
  ctor?: boolean;
  def: () => XValue;
}
export type ClassName =
  | 'pool'
  | 'host'
  | 'SR'
  | 'PBD'
  | 'SM'
  | 'VM'
  | 'VDI'
  | 'VBD'
  | 'VIF'
  | 'VTPM'
  | 'VM_guest_metrics'
  | 'network'
  | 'task'
  | 'session';
export const CLASSES: ClassName[] = [
  'pool',
  'host',
  'SR',
  'PBD',
  'SM',
  'VM',
  'VDI',
  'VBD',
  'VIF',
  'VTPM',
  'VM_guest_metrics',
  'network',
  'task',
  'session',
];

const s = (def = '', o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'string', def: () => def, ...o });
const i = (def = 0, o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'int', def: () => def, ...o });
const b = (def = false, o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'bool', def: () => def, ...o });
const dt = (o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'datetime', def: () => EPOCH, ...o });
const r = (o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'ref', def: () => NULL_REF, ...o });
const rs = (o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'refs', def: () => [], ...o });
const ss = (o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'strings', def: () => [], ...o });
const m = (o: Partial<FieldSpec> = {}): FieldSpec => ({ t: 'map', def: () => ({}), ...o });
const RW = { rw: true };
const REQ = { rw: true, req: true };

const common = {
  uuid: s(),
  name_label: s('', RW),
  name_description: s('', RW),
};

export const SCHEMA: Record<ClassName, Record<string, FieldSpec>> = {
  pool: {
    ...common,
    master: r(),
    default_SR: r(RW),
    suspend_image_SR: r(RW),
    crash_dump_SR: r(RW),
    other_config: m(RW),
    tags: ss(RW),
    ha_enabled: b(),
    restrictions: m(),
    cpu_info: m(),
    allowed_operations: ss(),
    current_operations: m(),
  },
  host: {
    ...common,
    hostname: s(),
    address: s(),
    enabled: b(true),
    API_version_major: i(2),
    API_version_minor: i(21),
    API_version_vendor: s('XenSource'),
    software_version: m(),
    resident_VMs: rs(),
    PBDs: rs(),
    PIFs: rs(),
    control_domain: r(),
    metrics: r(),
    other_config: m(RW),
    tags: ss(RW),
    local_cache_sr: r(),
    suspend_image_sr: r(RW),
    crash_dump_sr: r(RW),
    allowed_operations: ss(),
    current_operations: m(),
  },
  SR: {
    ...common,
    type: s('ext'),
    content_type: s('user'),
    physical_size: i(),
    physical_utilisation: i(),
    virtual_allocation: i(),
    shared: b(false, RW),
    VDIs: rs(),
    PBDs: rs(),
    allowed_operations: ss(),
    current_operations: m(),
    other_config: m(RW),
    sm_config: m(),
    tags: ss(RW),
    clustered: b(),
    is_tools_sr: b(),
    local_cache_enabled: b(),
  },
  PBD: {
    uuid: s(),
    host: r(),
    SR: r(),
    device_config: m(),
    currently_attached: b(true),
    other_config: m(RW),
  },
  SM: {
    ...common,
    type: s(),
    vendor: s(),
    copyright: s(),
    version: s(),
    required_api_version: s(),
    capabilities: ss(),
    features: m(),
    configuration: m(),
    other_config: m(RW),
    driver_filename: s(),
    required_cluster_stack: ss(),
    supported_image_formats: ss(),
  },
  VM: {
    ...common,
    power_state: s('Halted'),
    user_version: i(1, REQ),
    is_a_template: b(false, REQ),
    is_default_template: b(),
    is_a_snapshot: b(),
    snapshot_of: r(),
    snapshots: rs(),
    snapshot_time: dt(),
    snapshot_info: m(),
    parent: r(),
    children: rs(),
    is_control_domain: b(),
    resident_on: r(),
    affinity: r(REQ),
    VBDs: rs(),
    VIFs: rs(),
    VTPMs: rs(),
    VGPUs: rs(),
    consoles: rs(),
    other_config: m(REQ),
    xenstore_data: m(RW),
    platform: m(REQ),
    HVM_boot_params: m(REQ),
    HVM_boot_policy: s('', REQ),
    VCPUs_params: m(REQ),
    tags: ss(RW),
    blocked_operations: m(RW),
    allowed_operations: ss(),
    current_operations: m(),
    memory_static_min: i(0, { req: true, ctor: true }),
    memory_static_max: i(0, { req: true, ctor: true }),
    memory_dynamic_min: i(0, { req: true, ctor: true }),
    memory_dynamic_max: i(0, { req: true, ctor: true }),
    memory_overhead: i(),
    memory_target: i(),
    VCPUs_max: i(1, { req: true, ctor: true }),
    VCPUs_at_startup: i(1, { req: true, ctor: true }),
    actions_after_shutdown: s('destroy', REQ),
    actions_after_reboot: s('restart', REQ),
    actions_after_crash: s('restart', REQ),
    domain_type: s('hvm', { ctor: true }),
    PV_bootloader: s('', REQ),
    PV_kernel: s('', REQ),
    PV_ramdisk: s('', REQ),
    PV_args: s('', REQ),
    PV_bootloader_args: s('', REQ),
    PV_legacy_args: s('', REQ),
    PCI_bus: s('', REQ),
    recommendations: s('', REQ),
    suspend_VDI: r(),
    suspend_SR: r(RW),
    appliance: r(),
    domid: i(-1),
    metrics: r(),
    guest_metrics: r(),
    // Settable in VM.create; the setters (vtpm.ts / firmware.ts) gate on the power state.
    NVRAM: m({ ctor: true }),
    // VM.create ignores it; only VM.set_bios_strings (once) or VM.start (generic set) fill it.
    bios_strings: m(),
    generation_id: s('0:0', { ctor: true }),
    hardware_platform_version: i(0, RW),
    has_vendor_device: b(true, { ctor: true }),
  },
  VDI: {
    uuid: s(),
    name_label: s('', { ctor: true, rw: true }),
    name_description: s('', { ctor: true, rw: true }),
    SR: r({ req: true, ctor: true }),
    VBDs: rs(),
    virtual_size: i(0, { req: true, ctor: true }),
    physical_utilisation: i(),
    type: s('user', { req: true, ctor: true }),
    sharable: b(false, REQ),
    read_only: b(false, REQ),
    is_a_snapshot: b(),
    snapshot_of: r(),
    snapshots: rs(),
    snapshot_time: dt(),
    cbt_enabled: b(),
    other_config: m(REQ),
    xenstore_data: m(RW),
    sm_config: m(RW),
    tags: ss(RW),
    allowed_operations: ss(),
    current_operations: m(),
    location: s(),
    managed: b(true),
    missing: b(),
    storage_lock: b(),
    on_boot: s('persist'),
    allow_caching: b(),
    metadata_of_pool: r(),
    metadata_latest: b(),
    is_tools_iso: b(),
    parent: r(),
  },
  VBD: {
    uuid: s(),
    VM: r({ req: true, ctor: true }),
    VDI: r({ req: true, ctor: true }),
    device: s('', { ctor: true }),
    userdevice: s('', REQ),
    bootable: b(false, REQ),
    mode: s('RW', REQ),
    type: s('Disk', REQ),
    unpluggable: b(true, RW),
    empty: b(false, { req: true, ctor: true }),
    currently_attached: b(false, { ctor: true }),
    storage_lock: b(),
    other_config: m(REQ),
    status_code: i(),
    status_detail: s(),
    runtime_properties: m(),
    qos_algorithm_type: s('', REQ),
    qos_algorithm_params: m(REQ),
    qos_supported_algorithms: ss(),
    allowed_operations: ss(),
    current_operations: m(),
  },
  VIF: {
    uuid: s(),
    device: s('', { req: true, ctor: true }),
    network: r({ req: true, ctor: true }),
    VM: r({ req: true, ctor: true }),
    MAC: s('', { req: true, ctor: true }),
    MAC_autogenerated: b(),
    MTU: i(1500, { req: true, ctor: true }),
    other_config: m(REQ),
    currently_attached: b(),
    locking_mode: s('network_default', RW),
    ipv4_allowed: ss(RW),
    ipv6_allowed: ss(RW),
    qos_algorithm_type: s('', REQ),
    qos_algorithm_params: m(REQ),
    status_code: i(),
    status_detail: s(),
    runtime_properties: m(),
    allowed_operations: ss(),
    current_operations: m(),
  },
  VTPM: {
    uuid: s(),
    allowed_operations: ss(),
    current_operations: m(),
    VM: r(),
    backend: r(),
    persistence_backend: s('xapi'),
    is_unique: b(),
    is_protected: b(),
  },
  network: {
    ...common,
    bridge: s('', { ctor: true }),
    MTU: i(1500, RW),
    VIFs: rs(),
    PIFs: rs(),
    other_config: m(REQ),
    tags: ss(RW),
    managed: b(true, { ctor: true }),
    purpose: ss(RW),
    default_locking_mode: s('unlocked'),
    allowed_operations: ss(),
    current_operations: m(),
  },
  task: {
    uuid: s(),
    name_label: s(),
    name_description: s(),
    status: s('pending'),
    progress: { t: 'float', def: () => new XFloat(0) },
    result: s(),
    error_info: ss(),
    created: dt(),
    finished: dt(),
    resident_on: r(),
    type: s(),
    other_config: m(RW),
    subtask_of: r(),
    subtasks: rs(),
    allowed_operations: ss(),
    current_operations: m(),
    backtrace: s('()'),
  },
  // What the guest agent reports (xapi_guest_agent.ml): created at the agent's first report,
  // destroyed when the VM halts.
  VM_guest_metrics: {
    uuid: s(),
    os_version: m(),
    netbios_name: m(),
    PV_drivers_version: m(),
    PV_drivers_up_to_date: b(),
    PV_drivers_detected: b(),
    memory: m(),
    disks: m(),
    networks: m(),
    other: m(),
    last_updated: dt(),
    other_config: m(RW),
    live: b(),
    can_use_hotplug_vbd: s('unspecified'),
    can_use_hotplug_vif: s('unspecified'),
  },
  session: {
    uuid: s(),
    this_host: r(),
    this_user: r(),
    last_active: dt(),
    pool: b(),
    other_config: m(RW),
    is_local_superuser: b(true),
    subject: r(),
    validation_time: dt(),
    auth_user_sid: s(),
    auth_user_name: s(),
    rbac_permissions: ss(),
    tasks: rs(),
    parent: r(),
    originator: s(),
    client_certificate: b(),
  },
};

/** One-to-many relations XAPI keeps as a set on the "one" side: [childClass, childField, parentClass, setField]. */
export const RELATIONS: [ClassName, string, ClassName, string][] = [
  ['VBD', 'VM', 'VM', 'VBDs'],
  ['VBD', 'VDI', 'VDI', 'VBDs'],
  ['VIF', 'VM', 'VM', 'VIFs'],
  ['VIF', 'network', 'network', 'VIFs'],
  ['VTPM', 'VM', 'VM', 'VTPMs'],
  ['VDI', 'SR', 'SR', 'VDIs'],
  ['VDI', 'snapshot_of', 'VDI', 'snapshots'],
  ['VM', 'snapshot_of', 'VM', 'snapshots'],
  ['VM', 'parent', 'VM', 'children'],
  ['VM', 'resident_on', 'host', 'resident_VMs'],
  ['PBD', 'SR', 'SR', 'PBDs'],
  ['PBD', 'host', 'host', 'PBDs'],
  ['task', 'subtask_of', 'task', 'subtasks'],
];

/** Classes whose constructor is public (`C.create(record)`, `C.destroy(self)`). */
export const CONSTRUCTOR_CLASSES: ClassName[] = ['VM', 'VDI', 'VBD', 'VIF', 'network', 'PBD'];

export function defaults(cls: ClassName): XRecord {
  const rec: XRecord = {};
  for (const [k, f] of Object.entries(SCHEMA[cls])) rec[k] = f.def();
  return rec;
}
