/** The `npm run sim -- --config <file>` format: { "pools": SimPoolSpec[] }, validated with zod. */
import { z } from 'zod';
import type { SimPoolSpec } from './types.js';

const region = z.strictObject({
  offset: z.number().int().nonnegative(),
  length: z.number().int().positive(),
  byte: z.number().int().min(0).max(255).optional(),
  seed: z.number().int().optional(),
});
const disk = z.strictObject({
  name_label: z.string().optional(),
  sizeBytes: z.number().int().positive(),
  sr: z.string().optional(),
  userdevice: z.string().regex(/^\d+$/).optional(),
  imageFormat: z.enum(['vhd', 'qcow2']).optional(),
  data: z.array(region).optional(),
});
const vm = z.strictObject({
  name_label: z.string().min(1),
  uuid: z.uuid().optional(),
  power_state: z.enum(['Running', 'Halted']).optional(),
  vcpus: z.number().int().positive().optional(),
  memoryBytes: z.number().int().positive().optional(),
  tags: z.array(z.string()).optional(),
  other_config: z.record(z.string(), z.string()).optional(),
  disks: z.array(disk).optional(),
  vifs: z
    .array(
      z.strictObject({
        network: z.string(),
        mac: z.string().optional(),
        mtu: z.number().int().positive().optional(),
        locking_mode: z.enum(['network_default', 'locked', 'unlocked', 'disabled']).optional(),
      }),
    )
    .optional(),
  firmware: z.enum(['bios', 'uefi']).optional(),
  secureBoot: z.boolean().optional(),
  nvram: z.record(z.string(), z.string()).optional(),
  bios_strings: z.record(z.string(), z.string()).optional(),
  vtpm: z.strictObject({ contents: z.base64(), is_unique: z.boolean().optional() }).optional(),
  has_vendor_device: z.boolean().optional(),
  cdDrive: z.boolean().optional(),
  xenstore_data: z.record(z.string(), z.string()).optional(),
  snapshots: z.number().int().min(0).max(100).optional(),
});
const pool = z
  .strictObject({
    name: z.string().min(1),
    hosts: z.number().int().min(1).max(16).optional(),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    srs: z
      .array(
        z.strictObject({
          name_label: z.string().min(1),
          sizeBytes: z.number().int().positive(),
          type: z.string().optional(),
          shared: z.boolean().optional(),
          host: z.number().int().nonnegative().optional(),
          preferredImageFormats: z.string().optional(),
        }),
      )
      .optional(),
    networks: z.array(z.strictObject({ name_label: z.string().min(1) })).optional(),
    vms: z.array(vm).optional(),
    tls: z.strictObject({ cert: z.string(), key: z.string() }).optional(),
    testApi: z.boolean().optional(),
    limits: z
      .strictObject({
        streamBytesPerSecond: z.number().positive().optional(),
        hostBytesPerSecond: z.number().positive().optional(),
      })
      .optional(),
    bindAddress: z.string().optional(),
    restrictVtpm: z.boolean().optional(),
    restrictCbt: z.boolean().optional(),
    storage: z
      .strictObject({
        chainLimit: z.number().int().min(1).optional(),
        gcQuietMs: z.number().min(0).optional(),
        coalesceMs: z.number().min(0).optional(),
        opMs: z.number().min(0).optional(),
        retryMs: z.number().min(0).optional(),
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    const srs = new Set((p.srs ?? []).map((s) => s.name_label));
    const nets = new Set((p.networks ?? []).map((n) => n.name_label));
    (p.vms ?? []).forEach((v, i) => {
      (v.disks ?? []).forEach((d, j) => {
        if (d.sr !== undefined && !srs.has(d.sr))
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'disks', j, 'sr'],
            message: `no SR named "${d.sr}" in this pool`,
          });
        if (srs.size === 0)
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'disks', j],
            message: 'the pool has no SR for this disk',
          });
        for (const [k, r] of (d.data ?? []).entries()) {
          if (r.offset + r.length > d.sizeBytes)
            ctx.addIssue({
              code: 'custom',
              path: ['vms', i, 'disks', j, 'data', k],
              message: 'region ends past the disk size',
            });
        }
      });
      (v.vifs ?? []).forEach((f, j) => {
        if (!nets.has(f.network))
          ctx.addIssue({
            code: 'custom',
            path: ['vms', i, 'vifs', j, 'network'],
            message: `no network named "${f.network}" in this pool`,
          });
      });
    });
    (p.srs ?? []).forEach((s, i) => {
      if (s.host !== undefined && s.host >= (p.hosts ?? 1))
        ctx.addIssue({
          code: 'custom',
          path: ['srs', i, 'host'],
          message: `host index ${s.host} but the pool has ${p.hosts ?? 1} host(s)`,
        });
    });
  });

export const simConfigSchema = z.strictObject({ pools: z.array(pool).min(1) });

/** Parse and validate a config; throws an Error listing every problem with its path. */
export function parseSimConfig(json: unknown): { pools: SimPoolSpec[] } {
  const r = simConfigSchema.safeParse(json);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new Error(`invalid simulator config:\n${lines.join('\n')}`);
  }
  const names = r.data.pools.map((p) => p.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new Error(`invalid simulator config:\n  pools: duplicate pool name "${dup}"`);
  return r.data as { pools: SimPoolSpec[] };
}
