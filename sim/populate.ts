/** Turns a SimPoolSpec into pool, host, SR, PBD, network, VM, VDI, VBD and VIF objects. */
import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { randomMac } from './api/core.js';
import { createVdi } from './api/vdi.js';
import { populateSnapshot } from './api/vm.js';
import { introduceVtpm } from './api/vtpm.js';
import { BLOCK_SIZE } from './disk.js';
import type { PoolState } from './state.js';
import { supportedImageFormats } from './storage/formats.js';
import type { SimDiskSpec, SimPoolSpec, SimVmSpec } from './types.js';
import { NULL_REF } from './wire/values.js';

const GiB = 1024 ** 3;

/** Deterministic pseudo-random bytes: AES-CTR keystream keyed by the seed, positioned by the absolute
 *  offset, so the content is a function of (seed, offset) whatever the chunking. */
export function patternBytes(seed: number, offset: number, length: number): Buffer {
  const key = createHash('sha256').update(`xcr-sim:${seed}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(Math.floor(offset / 16)), 8);
  const skip = offset % 16;
  const ks = createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(length + skip));
  return skip ? ks.subarray(skip) : ks;
}

const fillCache = new Map<number, Buffer>();
function fillBlock(byte: number): Buffer {
  let b = fillCache.get(byte);
  if (!b) {
    b = Buffer.alloc(BLOCK_SIZE, byte);
    fillCache.set(byte, b);
  }
  return b;
}

/** Write a data region as a guest would (block by block; whole-block fills share one frozen buffer). */
export function writeRegion(pool: PoolState, vdi: string, r: NonNullable<SimDiskSpec['data']>[number]): void {
  const d = pool.disk(vdi);
  let pos = r.offset;
  const end = r.offset + r.length;
  while (pos < end) {
    const blockEnd = (Math.floor(pos / BLOCK_SIZE) + 1) * BLOCK_SIZE;
    const n = Math.min(blockEnd, end) - pos;
    if (r.byte !== undefined && n === BLOCK_SIZE)
      d.putBlock(pos / BLOCK_SIZE, fillBlock(r.byte & 0xff), true);
    else d.write(pos, r.byte !== undefined ? Buffer.alloc(n, r.byte) : patternBytes(r.seed ?? 1, pos, n));
    pos += n;
  }
  pool.syncVdi(vdi);
}

function dom0(pool: PoolState, hostIndex: number): string {
  return pool.db.create('VM', {
    name_label: `Control domain on host: ${pool.name}-host${hostIndex + 1}`,
    is_control_domain: true,
    power_state: 'Running',
    resident_on: pool.hosts[hostIndex]!.ref,
    memory_static_max: 4 * GiB,
    memory_dynamic_max: 4 * GiB,
    memory_dynamic_min: 4 * GiB,
    memory_static_min: 4 * GiB,
    VCPUs_max: 8,
    VCPUs_at_startup: 8,
    domid: 0,
  });
}

function createVm(
  pool: PoolState,
  vm: SimVmSpec,
  srByName: Map<string, string>,
  netByName: Map<string, string>,
): void {
  const mem = vm.memoryBytes ?? 2 * GiB;
  const running = vm.power_state === 'Running';
  const ref = pool.db.create('VM', {
    uuid: vm.uuid ?? randomUUID(),
    name_label: vm.name_label,
    power_state: running ? 'Running' : 'Halted',
    resident_on: running ? pool.master.ref : NULL_REF,
    domid: running ? 1 : -1,
    memory_static_max: mem,
    memory_dynamic_max: mem,
    memory_dynamic_min: mem,
    memory_static_min: Math.min(mem, 512 * 1024 * 1024),
    VCPUs_max: vm.vcpus ?? 1,
    VCPUs_at_startup: vm.vcpus ?? 1,
    tags: vm.tags ?? [],
    other_config: { ...(vm.other_config ?? {}), mac_seed: randomUUID() },
    platform: {
      'device-model': 'qemu-upstream-compat',
      ...(vm.firmware === 'uefi' ? { secureboot: vm.secureBoot ? 'true' : 'false' } : {}),
    },
    HVM_boot_policy: 'BIOS order',
    HVM_boot_params: { order: 'cd', ...(vm.firmware ? { firmware: vm.firmware } : {}) },
    NVRAM: vm.nvram ?? {},
    bios_strings: vm.bios_strings ?? {},
    has_vendor_device: vm.has_vendor_device ?? true,
    xenstore_data: vm.xenstore_data ?? {},
  });
  if (vm.vtpm) introduceVtpm(pool, ref, vm.vtpm.is_unique === true, vm.vtpm.contents);
  if (vm.cdDrive) {
    pool.db.create('VBD', {
      VM: ref,
      VDI: NULL_REF,
      userdevice: '3',
      mode: 'RO',
      type: 'CD',
      empty: true,
      bootable: false,
      currently_attached: running,
    });
  }
  const firstSr = [...srByName.values()][0];
  (vm.disks ?? []).forEach((disk, i) => {
    const sr = disk.sr ? srByName.get(disk.sr) : firstSr;
    if (!sr) throw new Error(`VM ${vm.name_label}: no SR ${disk.sr ?? '(none defined)'}`);
    const vdi = createVdi(pool, sr, {
      name_label: disk.name_label ?? `${vm.name_label} disk ${i}`,
      virtual_size: disk.sizeBytes,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      ...(disk.imageFormat ? { sm_config: { 'image-format': disk.imageFormat } } : {}),
    });
    for (const r of disk.data ?? []) writeRegion(pool, vdi, r);
    pool.db.create('VBD', {
      VM: ref,
      VDI: vdi,
      userdevice: disk.userdevice ?? String(i),
      device: running ? `xvd${String.fromCharCode(97 + i)}` : '',
      bootable: i === 0,
      mode: 'RW',
      type: 'Disk',
      currently_attached: running,
      other_config: { owner: '' },
    });
  });
  (vm.vifs ?? []).forEach((vif, i) => {
    const net = netByName.get(vif.network);
    if (!net) throw new Error(`VM ${vm.name_label}: no network ${vif.network}`);
    pool.db.create('VIF', {
      VM: ref,
      network: net,
      device: String(i),
      MAC: vif.mac ?? randomMac(),
      MAC_autogenerated: vif.mac === undefined,
      ...(vif.mtu ? { MTU: vif.mtu } : {}),
      ...(vif.locking_mode ? { locking_mode: vif.locking_mode } : {}),
      currently_attached: running,
    });
  });
  for (let i = 0; i < (vm.snapshots ?? 0); i++)
    populateSnapshot(pool, ref, `${vm.name_label} snapshot ${i + 1}`);
}

export function populate(pool: PoolState, spec: SimPoolSpec): void {
  const db = pool.db;
  for (const [i, h] of pool.hosts.entries()) {
    h.ref = db.create('host', {
      uuid: h.uuid,
      name_label: `${pool.name}-host${i + 1}`,
      hostname: `${pool.name}-host${i + 1}`,
      address: h.address,
      software_version: {
        product_version: '8.2.1',
        platform_version: '3.2.1',
        xapi: '1.20',
        product_brand: 'XCP-ng',
      },
    });
  }
  for (const [i, h] of pool.hosts.entries()) db.set('host', h.ref, 'control_domain', dom0(pool, i));
  const srByName = new Map<string, string>();
  for (const sr of spec.srs ?? []) {
    const ref = db.create('SR', {
      name_label: sr.name_label,
      type: sr.type ?? 'ext',
      shared: sr.shared === true,
      physical_size: sr.sizeBytes,
      allowed_operations: ['vdi_create', 'vdi_destroy', 'vdi_resize', 'vdi_clone', 'vdi_snapshot', 'scan'],
    });
    pool.addStore(ref, sr.sizeBytes);
    const hosts = sr.shared ? pool.hosts : [pool.hosts[sr.host ?? 0] ?? pool.hosts[0]!];
    for (const h of hosts)
      db.create('PBD', {
        host: h.ref,
        SR: ref,
        device_config: sr.preferredImageFormats
          ? { 'preferred-image-formats': sr.preferredImageFormats }
          : {},
        currently_attached: true,
      });
    srByName.set(sr.name_label, ref);
  }
  for (const type of new Set((spec.srs ?? []).map((sr) => sr.type ?? 'ext')))
    db.create('SM', {
      name_label: `${type} SR driver`,
      type,
      vendor: 'Vates',
      required_api_version: '1.0',
      driver_filename: `/opt/xensource/sm/${type.toUpperCase()}SR`,
      supported_image_formats: supportedImageFormats(type),
    });
  const netByName = new Map<string, string>();
  (spec.networks ?? []).forEach((n, i) => {
    netByName.set(n.name_label, db.create('network', { name_label: n.name_label, bridge: `xenbr${i}` }));
  });
  pool.poolRef = db.create('pool', {
    name_label: spec.name,
    master: pool.master.ref,
    default_SR: [...srByName.values()][0] ?? NULL_REF,
    // Hosts that may hold a VTPM say so explicitly (xapi refuses unless the value is "false").
    restrictions: {
      restrict_vtpm: spec.restrictVtpm ? 'true' : 'false',
      restrict_cbt: spec.restrictCbt ? 'true' : 'false',
    },
  });
  for (const vm of spec.vms ?? []) createVm(pool, vm, srByName, netByName);
}
