/**
 * What decides how a VM boots: the UEFI variable store (VM.NVRAM), SMBIOS strings and the vendor
 * device, with the gates xapi puts on each (datamodel_vm.ml, xapi_vm.ml, xapi_vm_helpers.ml).
 */
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import type { XRecord } from '../wire/values.js';
import { self } from './implicit.js';
import { p, type Registry } from './registry.js';
import { checkVmOperation } from './vm-admission.js';

/** The keys VM.set_bios_strings accepts (xapi-consts settable_vm_bios_string_keys). */
export const SETTABLE_BIOS_KEYS = [
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

/** The generic set VM.start writes when a VM has none, and the base set_bios_strings overrides. */
export function genericBiosStrings(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of SETTABLE_BIOS_KEYS) out[k] = '';
  return {
    ...out,
    'bios-vendor': 'Xen',
    'system-manufacturer': 'Xen',
    'system-product-name': 'HVM domU',
    'hp-rombios': '',
    'oem-1': 'Xen',
    'oem-2': 'MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d',
  };
}

function assertBiosStrings(value: XRecord): void {
  for (const [k, raw] of Object.entries(value)) {
    const v = String(raw);
    if (!SETTABLE_BIOS_KEYS.includes(k)) throw new XapiError('INVALID_VALUE', [k, 'Unknown key']);
    if (v === '') throw new XapiError('INVALID_VALUE', [k, 'Value provided is empty']);
    if (v.length > 512) throw new XapiError('INVALID_VALUE', [k, `${v} has length more than 512 characters`]);
    if ([...v].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) >= 0x7f)) {
      throw new XapiError('INVALID_VALUE', [k, `${v} has non-printable ASCII characters`]);
    }
  }
}

function nvram(pool: PoolState, vm: string): XRecord {
  return { ...(pool.db.get('VM', vm).NVRAM as XRecord) };
}

export function registerFirmware(reg: Registry): void {
  // The public NVRAM setters are the VM operation changing_NVRAM: halted only, never on snapshots.
  const changeNvram = (
    name: string,
    params: ReturnType<typeof p>[],
    fn: (m: XRecord, args: string[], vm: string) => XRecord,
  ) =>
    reg.add({
      name: `VM.${name}`,
      params: [p('self', 'ref'), ...params],
      handler: ({ pool }, [vm, ...args]) => {
        const ref = self(pool, 'VM', vm);
        checkVmOperation(pool, ref, 'changing_NVRAM');
        pool.db.set('VM', ref, 'NVRAM', fn(nvram(pool, ref), args as string[], ref));
        return undefined;
      },
    });
  changeNvram('set_NVRAM', [p('value', 'map')], (_m, [value]) => ({ ...(value as unknown as XRecord) }));
  changeNvram('add_to_NVRAM', [p('key', 'string'), p('value', 'string')], (m, [key, value], vm) => {
    if (key! in m) throw new XapiError('MAP_DUPLICATE_KEY', ['VM', 'NVRAM', vm, key!]);
    return { ...m, [key!]: value! };
  });
  changeNvram('remove_from_NVRAM', [p('key', 'string')], (m, [key]) => {
    delete m[key!];
    return m;
  });
  // varstored's call while the guest runs: no power-state gate, replaces only EFI-variables.
  reg.add({
    name: 'VM.set_NVRAM_EFI_variables',
    params: [p('self', 'ref'), p('value', 'string')],
    handler: ({ pool }, [vm, value]) => {
      const ref = self(pool, 'VM', vm);
      pool.db.set('VM', ref, 'NVRAM', { ...nvram(pool, ref), 'EFI-variables': String(value) });
      return undefined;
    },
  });
  reg.add({
    name: 'VM.set_bios_strings',
    params: [p('self', 'ref'), p('value', 'map')],
    handler: ({ pool }, [vm, value]) => {
      const ref = self(pool, 'VM', vm);
      if (Object.keys(pool.db.get('VM', ref).bios_strings as XRecord).length > 0) {
        throw new XapiError('VM_BIOS_STRINGS_ALREADY_SET', []);
      }
      assertBiosStrings(value as XRecord);
      pool.db.set('VM', ref, 'bios_strings', { ...genericBiosStrings(), ...(value as XRecord) });
      return undefined;
    },
  });
  reg.add({
    name: 'VM.set_has_vendor_device',
    params: [p('self', 'ref'), p('value', 'bool')],
    handler: ({ pool }, [vm, value]) => {
      const ref = self(pool, 'VM', vm);
      const ps = String(pool.db.get('VM', ref).power_state);
      if (ps !== 'Halted') throw new XapiError('VM_BAD_POWER_STATE', [ref, 'halted', ps.toLowerCase()]);
      pool.db.set('VM', ref, 'has_vendor_device', value === true);
      return undefined;
    },
  });
}
