/**
 * What a recovery point carries of its source, field by field: the state that decides how the VM
 * boots and what the guest sees. `recoveryPoint` compares the recovery point with the source
 * snapshot it was made from; `clone` compares an `xcr clone` of it with that same snapshot.
 *
 * - equal: byte-equal to the source snapshot.
 * - differs: must not be equal (identity: a new object, a new Windows VM-Generation ID on clones).
 * - xcr: set by xcr (name, ownership keys, the start fence) and checked by its own tests.
 *
 * `via` is how the value gets there: the VM.create record, a setter after create, or xapi itself.
 */
export type Carry = 'equal' | 'differs' | 'xcr';

export interface CarriedField {
  field: string;
  recoveryPoint: Carry;
  clone: Carry;
  via: 'VM.create' | 'VM.set_bios_strings' | 'xapi';
  why: string;
}

const created = (field: string, why: string): CarriedField => ({
  field,
  recoveryPoint: 'equal',
  clone: 'equal',
  via: 'VM.create',
  why,
});

export const CARRIED_FIELDS: readonly CarriedField[] = [
  {
    field: 'uuid',
    recoveryPoint: 'differs',
    clone: 'differs',
    via: 'xapi',
    why: 'every VM is a new object',
  },
  {
    field: 'generation_id',
    recoveryPoint: 'equal',
    clone: 'differs',
    via: 'VM.create',
    why: "the recovery point keeps the snapshot's; VM.clone gives the copy a fresh one, so Windows (AD) knows it was restored",
  },
  {
    field: 'name_label',
    recoveryPoint: 'xcr',
    clone: 'xcr',
    via: 'VM.create',
    why: '"<source name> (xcr <job> <time>)"; the clone gets the source name back',
  },
  created('name_description', "the source's description, for humans"),
  created('NVRAM', 'UEFI variables: boot entries, Secure Boot keys (the whole map)'),
  {
    field: 'bios_strings',
    recoveryPoint: 'equal',
    clone: 'equal',
    via: 'VM.set_bios_strings',
    why: 'SMBIOS identity (licence activation); VM.create drops it, so it is set once right after',
  },
  created('has_vendor_device', 'the Windows Update PV driver device'),
  created('HVM_boot_policy', 'boot policy'),
  created('HVM_boot_params', 'boot order and firmware (bios or uefi)'),
  created('platform', 'secureboot, device model, viridian flags, …'),
  created('hardware_platform_version', 'the virtual hardware generation the guest was installed on'),
  created('xenstore_data', 'vm-data keys the guest reads'),
  created('domain_type', 'hvm, pv, pvh or pv_in_pvh'),
  created('VCPUs_max', 'VCPU settings'),
  created('VCPUs_at_startup', 'VCPU settings'),
  created('VCPUs_params', 'VCPU settings (weight, cap, topology)'),
  created('memory_static_min', 'memory settings'),
  created('memory_static_max', 'memory settings'),
  created('memory_dynamic_min', 'memory settings'),
  created('memory_dynamic_max', 'memory settings'),
  created('HVM_shadow_multiplier', 'shadow memory (hosts that report it)'),
  created('actions_after_shutdown', 'lifecycle actions'),
  created('actions_after_reboot', 'lifecycle actions'),
  created('actions_after_crash', 'lifecycle actions'),
  created('PV_bootloader', 'PV boot'),
  created('PV_kernel', 'PV boot'),
  created('PV_ramdisk', 'PV boot'),
  created('PV_args', 'PV boot'),
  created('PV_bootloader_args', 'PV boot'),
  created('PV_legacy_args', 'PV boot'),
  created('PCI_bus', 'PCI bus'),
  created('recommendations', 'template recommendations'),
  created('user_version', 'user version'),
  {
    field: 'other_config',
    recoveryPoint: 'xcr',
    clone: 'xcr',
    via: 'VM.create',
    why: 'xcr:* ownership keys (the clone keeps only xcr:cloned-from)',
  },
  {
    field: 'blocked_operations',
    recoveryPoint: 'xcr',
    clone: 'xcr',
    via: 'VM.create',
    why: 'start/start_on blocked on the recovery point; nothing blocked on the clone',
  },
];

/** The fields taken from the source snapshot into the VM.create record. */
export const CREATE_FIELDS: readonly string[] = CARRIED_FIELDS.filter(
  (f) => f.via === 'VM.create' && f.recoveryPoint === 'equal',
).map((f) => f.field);

/** The SMBIOS keys VM.set_bios_strings accepts (xapi refuses others and empty values). */
export const SETTABLE_BIOS_KEYS: readonly string[] = [
  'bios-vendor',
  'bios-version',
  'system-manufacturer',
  'system-product-name',
  'system-version',
  'system-serial-number',
  'baseboard-manufacturer',
  'baseboard-product-name',
  'baseboard-version',
  'baseboard-serial-number',
  'baseboard-asset-tag',
  'baseboard-location-in-chassis',
  'enclosure-asset-tag',
];

/** What VM.set_bios_strings can take of a source map: settable keys with a non-empty value. */
export function settableBiosStrings(src: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(src).filter(([k, v]) => SETTABLE_BIOS_KEYS.includes(k) && v !== ''),
  );
}
