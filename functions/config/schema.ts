import { z } from 'zod';

/**
 * The job configuration: one typed file read by the CDK app, the CLI and the local runner.
 * Credentials are references (an environment variable locally, a Secrets Manager secret on AWS),
 * never values, so nothing secret can reach workflow input or a synthesized template.
 */

const SECRET_HINT =
  'give a reference, never the password itself: { "env": "VAR_NAME" } or { "secret": "name-or-arn" }';

export const credentialRefSchema = z.union(
  [
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') }),
    z.strictObject({ secret: z.string().min(1, 'a Secrets Manager secret name or ARN') }),
  ],
  { error: `expected a credential reference; ${SECRET_HINT}` },
);
export type CredentialRef = z.infer<typeof credentialRefSchema>;

const fingerprintSchema = z
  .string()
  .transform((v) => v.replace(/:/g, '').toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 fingerprint: 64 hex digits, colons allowed'));

export const poolSchema = z
  .strictObject({
    url: z
      .string()
      .url('a URL such as https://10.0.0.10')
      .refine((u) => /^https?:\/\//.test(u), 'must start with https:// (or http:// with allowPlainHttp)'),
    username: z.string().min(1).default('root'),
    password: credentialRefSchema,
    /** SHA-256 fingerprint of the host's TLS certificate (hosts use self-signed certificates). */
    tlsFingerprint: fingerprintSchema.optional(),
    /** PEM CA bundle file used instead of a fingerprint. */
    tlsCaFile: z.string().min(1).optional(),
    /** Plain HTTP (no TLS): only inside a trusted network, e.g. over the VPN. */
    allowPlainHttp: z.boolean().default(false),
  })
  .superRefine((pool, ctx) => {
    const https = pool.url.startsWith('https://');
    if (!https && !pool.allowPlainHttp) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: 'plain http:// is refused unless allowPlainHttp is true; use https:// with tlsFingerprint',
      });
    }
    if (https && !pool.tlsFingerprint && !pool.tlsCaFile) {
      ctx.addIssue({
        code: 'custom',
        path: ['tlsFingerprint'],
        message:
          'an https pool needs tlsFingerprint (openssl x509 -noout -fingerprint -sha256) or tlsCaFile; certificates are never accepted unverified',
      });
    }
  });
export type PoolConfig = z.infer<typeof poolSchema>;

const objectSelector = z.union(
  [z.strictObject({ uuid: z.string().uuid('a uuid') }), z.strictObject({ name: z.string().min(1) })],
  { error: 'expected { "uuid": "..." } or { "name": "..." }' },
);
export type ObjectSelector = z.infer<typeof objectSelector>;

const MIN_INTERVAL_MIN = 10;
const MAX_INTERVAL_MIN = 24 * 60;
const rateUnits: Record<string, number> = {
  minute: 1,
  minutes: 1,
  hour: 60,
  hours: 60,
  day: 1440,
  days: 1440,
};

/** Minutes between runs of a rate expression such as "15 minutes", or undefined when malformed. */
export function rateMinutes(rate: string): number | undefined {
  const m = /^(\d+) (minutes?|hours?|days?)$/.exec(rate.trim());
  if (!m) return undefined;
  return Number(m[1]) * (rateUnits[m[2]!] ?? Number.NaN);
}

export const scheduleSchema = z.union(
  [
    z.strictObject({
      rate: z.string().superRefine((rate, ctx) => {
        const minutes = rateMinutes(rate);
        if (minutes === undefined) {
          ctx.addIssue({ code: 'custom', message: 'expected "<n> minutes|hours|days", e.g. "15 minutes"' });
        } else if (minutes < MIN_INTERVAL_MIN || minutes > MAX_INTERVAL_MIN) {
          ctx.addIssue({
            code: 'custom',
            message: `must be between ${MIN_INTERVAL_MIN} minutes and 24 hours`,
          });
        }
      }),
      timezone: z.string().default('UTC'),
    }),
    z.strictObject({
      /** EventBridge Scheduler cron: 6 fields "min hour day-of-month month day-of-week year". */
      cron: z
        .string()
        .regex(
          /^\S+ \S+ \S+ \S+ \S+ \S+$/,
          'six fields: "minutes hours day-of-month month day-of-week year"',
        ),
      timezone: z.string().default('UTC'),
    }),
  ],
  { error: 'expected { "rate": "15 minutes" } or { "cron": "0/15 * * * ? *", "timezone": "UTC" }' },
);
export type ScheduleConfig = z.infer<typeof scheduleSchema>;

export const jobSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and dashes, at most 40'),
  name: z.string().optional(),
  source: z.strictObject({ pool: z.string().min(1) }),
  destination: z.strictObject({
    pool: z.string().min(1),
    sr: objectSelector,
    /** Network the replica's VIFs attach to; default: the destination pool's first network. */
    network: objectSelector.optional(),
  }),
  vms: z.union(
    [
      z.strictObject({ uuids: z.array(z.string().uuid('a VM uuid')).min(1, 'list at least one VM uuid') }),
      z.strictObject({ tag: z.string().min(1) }),
    ],
    { error: 'expected { "uuids": ["..."] } or { "tag": "replicate" }' },
  ),
  schedule: scheduleSchema,
  /** Recovery points kept on the destination (newest first). */
  retention: z.number().int().min(1, 'keep at least 1 recovery point').max(100).default(3),
  /** Force a full copy every N runs; 0 = never. */
  fullInterval: z.number().int().min(0).default(0),
  /** VMs replicated in parallel. */
  concurrency: z.number().int().min(1).max(50).default(2),
  /** Bandwidth cap per disk stream, MB/s (10^6 bytes); unset = unlimited. */
  bandwidthLimitMBps: z.number().positive().optional(),
  /** Limit for one disk transfer in one invocation (Lambda allows at most 900 s). */
  transferTimeoutSec: z.number().int().min(30).max(900).default(840),
  /**
   * How disks travel: `vhd` = one VHD stream per disk per invocation (2 MiB blocks); `cbt` = changed
   * 64 KiB extents (VDI.list_changed_blocks) read over NBD and written with chunked raw imports, in
   * resumable pieces (a VM fails when CBT/NBD are not usable); `auto` = cbt per disk when usable, else vhd.
   */
  transferMode: z.enum(['vhd', 'cbt', 'auto']).default('vhd'),
  /** Turn CBT on for source disks (needed by the cbt mode). */
  enableCbt: z.boolean().default(false),
  /**
   * cbt mode: data bytes one stream-delta invocation sends (MiB, 2^20 bytes). It is the resumable
   * unit: a disk takes ceil(changed bytes / this) invocations, and a failure costs at most this much.
   */
  cbtChunkMiB: z.number().int().min(16, 'at least 16 MiB').default(1024),
  /**
   * cbt mode: after a commit, reduce the previous base snapshot's VDIs to CBT metadata
   * (VDI.data_destroy) to give their space back on the source; the next delta still works from them.
   */
  cbtDestroySnapshotData: z.boolean().default(false),
  /**
   * Deepest VHD chain (counting the disk itself) a delta may build on the destination SR. Each delta
   * clones the previous recovery point, adding a level until the SR's garbage collector coalesces;
   * at this depth xcr waits up to `chainWaitSec` for it, then copies the disk flat on the
   * destination instead of cloning. SM refuses snapshots and clones from depth 30.
   */
  maxChainDepth: z.number().int().min(2).max(29, "below SM's chain limit of 30").default(12),
  /** How long a run waits (per VM, all disks together) for coalescing when a chain is at `maxChainDepth`. */
  chainWaitSec: z
    .number()
    .int()
    .min(0)
    .max(600, 'at most 600 s (a Lambda step lasts 15 minutes)')
    .default(120),
});
export type JobConfig = z.infer<typeof jobSchema>;

export const deploymentSchema = z.strictObject({
  vpcId: z.string().regex(/^vpc-[0-9a-f]+$/, 'an existing VPC id such as vpc-0abc...'),
  subnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).min(1, 'private subnets routed to the VPN'),
  availabilityZones: z.array(z.string()).optional(),
  /** CIDRs of the XenServer management networks (egress is limited to them). */
  xapiCidrs: z.array(z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'an IPv4 CIDR')).min(1),
  /** Replication lag (age of the newest recovery point) that raises an alarm, in minutes. */
  lagAlarmMinutes: z.number().int().positive().optional(),
  alarmEmail: z.string().email().optional(),
});
export type DeploymentConfig = z.infer<typeof deploymentSchema>;

export const configSchema = z
  .strictObject({
    version: z.literal(1, { error: 'set "version": 1' }),
    pools: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), poolSchema),
    jobs: z.array(jobSchema).min(1, 'define at least one job'),
    deployment: deploymentSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Set<string>();
    cfg.jobs.forEach((job, i) => {
      if (seen.has(job.id))
        ctx.addIssue({ code: 'custom', path: ['jobs', i, 'id'], message: `duplicate job id "${job.id}"` });
      seen.add(job.id);
      for (const side of ['source', 'destination'] as const) {
        if (!cfg.pools[job[side].pool]) {
          ctx.addIssue({
            code: 'custom',
            path: ['jobs', i, side, 'pool'],
            message: `unknown pool "${job[side].pool}"; define it under "pools" (known: ${Object.keys(cfg.pools).join(', ') || 'none'})`,
          });
        }
      }
    });
  });
export type XcrConfig = z.infer<typeof configSchema>;
