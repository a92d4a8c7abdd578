/** NVRAM, bios_strings, has_vendor_device and the VTPM class, with xapi's gates and error codes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

const MiB = 1024 * 1024;
const TPM = Buffer.from('swtpm state v1').toString('base64');
let pool: SimPool;
let restricted: SimPool;
let s: TestSession;

beforeAll(async () => {
  const vm = (name_label: string, extra: object = {}) => ({
    name_label,
    firmware: 'uefi' as const,
    secureBoot: true,
    nvram: { 'EFI-variables': Buffer.from('vars-1').toString('base64') },
    disks: [{ sizeBytes: 4 * MiB }],
    vifs: [{ network: 'net', mac: '02:00:00:00:00:01' }],
    ...extra,
  });
  pool = await startPool({
    name: 'fw',
    password: 'pw',
    srs: [{ name_label: 'Local', sizeBytes: 64 * MiB }],
    networks: [{ name_label: 'net' }],
    vms: [
      vm('uefi', { vtpm: { contents: TPM } }),
      vm('unique', { vtpm: { contents: TPM, is_unique: true } }),
      vm('bare'),
      vm('running', { power_state: 'Running' }),
      { name_label: 'bios-vm', vtpm: { contents: TPM } },
    ],
  });
  restricted = await startPool({
    name: 'old',
    password: 'pw',
    restrictVtpm: true,
    vms: [{ name_label: 'v' }],
  });
  s = await TestSession.login(pool.url, 'root', 'pw');
});
afterAll(async () => {
  await pool?.close();
  await restricted?.close();
});

const vmRef = async (name: string) => (await s.call<string[]>('VM.get_by_name_label', name))[0]!;

describe('NVRAM', () => {
  it('is settable in VM.create and changes only while halted, never on a snapshot', async () => {
    const vm = await vmRef('bare');
    await s.call('VM.add_to_NVRAM', vm, 'EFI-variables-on-boot', 'persist');
    expect(await s.failure('VM.add_to_NVRAM', vm, 'EFI-variables-on-boot', 'reset')).toEqual([
      'MAP_DUPLICATE_KEY',
      'VM',
      'NVRAM',
      vm,
      'EFI-variables-on-boot',
    ]);
    await s.call('VM.remove_from_NVRAM', vm, 'EFI-variables-on-boot');
    await s.call('VM.set_NVRAM', vm, { 'EFI-variables': 'AAAA' });
    expect(await s.call('VM.get_NVRAM', vm)).toEqual({ 'EFI-variables': 'AAAA' });
    const running = await vmRef('running');
    expect(await s.failure('VM.set_NVRAM', running, {})).toEqual([
      'VM_BAD_POWER_STATE',
      running,
      'halted',
      'running',
    ]);
    // varstored's path works while the guest runs.
    await s.call('VM.set_NVRAM_EFI_variables', running, 'QkJCQg==');
    expect(await s.call('VM.get_NVRAM', running)).toEqual({ 'EFI-variables': 'QkJCQg==' });
    const snap = await s.async('VM.snapshot', running, 'snap');
    expect(await s.call('VM.get_NVRAM', snap)).toEqual({ 'EFI-variables': 'QkJCQg==' });
    expect(await s.failure('VM.set_NVRAM', snap, {})).toEqual(['VM_IS_SNAPSHOT', snap, 'changing_NVRAM']);
  });
});

describe('bios_strings and has_vendor_device', () => {
  it('VM.create drops bios_strings; set_bios_strings validates and works exactly once', async () => {
    const created = await s.async('VM.create', {
      ...(await s.call<Record<string, unknown>>('VM.get_record', await vmRef('bare'))),
      name_label: 'made',
      bios_strings: { 'system-manufacturer': 'Acme' },
    });
    expect(await s.call('VM.get_bios_strings', created)).toEqual({});
    expect(await s.failure('VM.set_bios_strings', created, { 'oem-1': 'x' })).toEqual([
      'INVALID_VALUE',
      'oem-1',
      'Unknown key',
    ]);
    expect(await s.failure('VM.set_bios_strings', created, { 'system-version': '' })).toEqual([
      'INVALID_VALUE',
      'system-version',
      'Value provided is empty',
    ]);
    await s.call('VM.set_bios_strings', created, {
      'system-manufacturer': 'Acme',
      'system-serial-number': 'S1',
    });
    const bios = await s.call<Record<string, string>>('VM.get_bios_strings', created);
    expect(bios).toMatchObject({
      'system-manufacturer': 'Acme',
      'system-serial-number': 'S1',
      'oem-1': 'Xen',
    });
    expect(await s.failure('VM.set_bios_strings', created, { 'system-version': '2' })).toEqual([
      'VM_BIOS_STRINGS_ALREADY_SET',
    ]);
    const clone = await s.async('VM.clone', created, 'made-clone');
    expect(await s.call('VM.get_bios_strings', clone)).toEqual(bios);
  });

  it('VM.start fills the generic set; has_vendor_device changes only while halted', async () => {
    const vm = await vmRef('running');
    expect(await s.call('VM.get_has_vendor_device', vm)).toBe(true);
    expect(await s.failure('VM.set_has_vendor_device', vm, false)).toEqual([
      'VM_BAD_POWER_STATE',
      vm,
      'halted',
      'running',
    ]);
    expect(await s.call<Record<string, string>>('VM.get_bios_strings', vm)).toEqual({});
    await s.async('VM.hard_shutdown', vm);
    await s.call('VM.set_has_vendor_device', vm, false);
    await s.async('VM.start', vm, false, false);
    expect(await s.call<Record<string, string>>('VM.get_bios_strings', vm)).toMatchObject({
      'system-product-name': 'HVM domU',
    });
    expect(await s.failure('VM.set_bios_strings', vm, { 'system-version': '2' })).toEqual([
      'VM_BIOS_STRINGS_ALREADY_SET',
    ]);
  });
});

describe('VTPM', () => {
  it('one per VM, halted only; contents are a secret outside the record', async () => {
    const vm = await vmRef('uefi');
    const [vtpm] = await s.call<string[]>('VM.get_VTPMs', vm);
    const rec = await s.call<Record<string, unknown>>('VTPM.get_record', vtpm);
    expect(rec).toMatchObject({ VM: vm, is_unique: false, persistence_backend: 'xapi' });
    expect(Object.keys(rec)).not.toContain('contents');
    expect(await s.call('VTPM.get_contents', vtpm)).toBe(TPM);
    expect(await s.failure('VTPM.create', vm, false)).toEqual(['VTPM_MAX_AMOUNT_REACHED', '1']);
    expect(await s.failure('VTPM.set_contents', vtpm, 'not base64!')).toEqual([
      'INTERNAL_ERROR',
      'Base64.decode: invalid input',
    ]);
    const running = await vmRef('running');
    expect(await s.failure('VTPM.create', running, false)).toEqual([
      'VM_BAD_POWER_STATE',
      running,
      'halted',
      'running',
    ]);
  });

  it('clone and snapshot copy contents (not of a unique VTPM), give a fresh generation_id, keep MACs only on snapshot', async () => {
    const vm = await vmRef('uefi');
    const snap = await s.async('VM.snapshot', vm, 'rp');
    const clone = await s.async('VM.clone', vm, 'c');
    for (const copy of [snap, clone]) {
      const [v] = await s.call<string[]>('VM.get_VTPMs', copy);
      expect(await s.call('VTPM.get_contents', v)).toBe(TPM);
      expect(await s.call('VM.get_generation_id', copy)).not.toBe(await s.call('VM.get_generation_id', vm));
      expect(await s.call('VM.get_NVRAM', copy)).toEqual(await s.call('VM.get_NVRAM', vm));
    }
    const mac = async (v: string) => s.call('VIF.get_MAC', (await s.call<string[]>('VM.get_VIFs', v))[0]);
    expect(await mac(snap)).toBe('02:00:00:00:00:01');
    expect(await mac(clone)).not.toBe('02:00:00:00:00:01');
    expect(await s.failure('VTPM.create', snap, false)).toEqual(['VM_IS_SNAPSHOT', snap, 'create_vtpm']);
    const uclone = await s.async('VM.clone', await vmRef('unique'), 'u');
    const [uv] = await s.call<string[]>('VM.get_VTPMs', uclone);
    expect(await s.call('VTPM.get_contents', uv)).toBe('');
    expect(await s.call('VTPM.get_is_unique', uv)).toBe(true);
    await s.async('VM.destroy', clone);
    expect(pool.test.objects('VTPM').some(([, r]) => r.VM === clone)).toBe(false);
  });

  it('VTPM.destroy needs halted or suspended; a BIOS VM with a VTPM does not start', async () => {
    const bios = await vmRef('bios-vm');
    expect(await s.failure('VM.start', bios, false, false)).toEqual([
      'NOT_IMPLEMENTED',
      'Booting BIOS VM with VTPMs attached',
    ]);
    const [vtpm] = await s.call<string[]>('VM.get_VTPMs', bios);
    await s.async('VTPM.destroy', vtpm);
    expect(await s.call('VM.get_VTPMs', bios)).toEqual([]);
    const created = await s.async('VTPM.create', bios, false);
    expect(await s.call('VTPM.get_contents', created)).toBe('');
    await s.call('VTPM.set_contents', created, TPM);
    expect(await s.call('VTPM.get_contents', created)).toBe(TPM);
  });

  it('a pool whose licence restricts vTPM refuses VTPM.create with FEATURE_RESTRICTED', async () => {
    const o = await TestSession.login(restricted.url, 'root', 'pw');
    const [vm] = await o.call<string[]>('VM.get_by_name_label', 'v');
    const [p] = await o.call<string[]>('pool.get_all');
    expect(await o.call('pool.get_restrictions', p)).toMatchObject({ restrict_vtpm: 'true' });
    expect(await o.failure('VTPM.create', vm, false)).toEqual(['FEATURE_RESTRICTED', 'restrict_vtpm']);
  });
});
