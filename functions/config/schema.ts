import { z } from 'zod';
import {
  cronProblems,
  cronTooOften,
  MAX_INTERVAL_MIN,
  MIN_INTERVAL_CBT_MIN,
  MIN_INTERVAL_MIN,
  rateMinutes,
  scheduleGapMinutes,
  timeZoneProblems,
} from './schedule.js';

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
    z.strictObject({
      secret: z.string().min(1, 'a Secrets Manager secret name or ARN'),
      /** The customer-managed KMS key the secret is encrypted with (the steps get kms:Decrypt on it). */
      kmsKeyArn: z
        .string()
        .regex(
          /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/,
          'a KMS key ARN such as arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab (not an alias)',
        )
        .optional(),
    }),
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

const timezone = z
  .string()
  .default('UTC')
  .superRefine((tz, ctx) => {
    for (const message of timeZoneProblems(tz)) ctx.addIssue({ code: 'custom', message });
  });

export { rateMinutes };

/** A schedule whose runs are at least `floorMin` minutes apart (and at most a day for a rate). */
function scheduleWithFloor(floorMin: number) {
  return z.union(
    [
      z.strictObject({
        rate: z.string().superRefine((rate, ctx) => {
          const minutes = rateMinutes(rate);
          if (minutes === undefined) {
            ctx.addIssue({ code: 'custom', message: 'expected "<n> minutes|hours|days", e.g. "15 minutes"' });
          } else if (minutes < floorMin || minutes > MAX_INTERVAL_MIN) {
            ctx.addIssue({ code: 'custom', message: `must be between ${floorText(floorMin)} and 24 hours` });
          }
        }),
        timezone,
      }),
      z.strictObject({
        /** EventBridge Scheduler cron: 6 fields "min hour day-of-month month day-of-week year". */
        cron: z.string().superRefine((cron, ctx) => {
          for (const message of cronProblems(cron, floorMin)) ctx.addIssue({ code: 'custom', message });
        }),
        timezone,
      }),
    ],
    { error: 'expected { "rate": "15 minutes" } or { "cron": "0/15 * * * ? *", "timezone": "UTC" }' },
  );
}

const floorText = (min: number) => `${min} minute${min === 1 ? '' : 's'}`;

/** Drill schedules (and vhd jobs, checked per job below): at least MIN_INTERVAL_MIN apart. */
export const scheduleSchema = scheduleWithFloor(MIN_INTERVAL_MIN);
/** A job's schedule: down to 1 minute; vhd jobs are held to MIN_INTERVAL_MIN by vhdScheduleProblem. */
const jobScheduleSchema = scheduleWithFloor(MIN_INTERVAL_CBT_MIN);

/** The refusal of a schedule too frequent for the vhd transfer mode (cbt and auto go down to 1 minute). */
export function vhdScheduleProblem(
  schedule: { rate: string } | { cron: string },
  transferMode: string,
): { path: string; message: string } | undefined {
  if (transferMode !== 'vhd') return undefined;
  const gap = scheduleGapMinutes(schedule);
  if (gap === undefined || gap < MIN_INTERVAL_CBT_MIN || gap >= MIN_INTERVAL_MIN) return undefined;
  const fix = `; set "transferMode": "cbt" or "auto" for runs down to 1 minute apart`;
  return 'rate' in schedule
    ? {
        path: 'rate',
        message: `must be between ${MIN_INTERVAL_MIN} minutes and 24 hours for transferMode "vhd"${fix}`,
      }
    : { path: 'cron', message: `${cronTooOften(gap, MIN_INTERVAL_MIN)} for transferMode "vhd"${fix}` };
}

export type ScheduleConfig = z.infer<typeof scheduleSchema>;

export const drillSchema = z.strictObject({
  /** When drills run: a schedule as the job's, or after every Nth successful run of the job. */
  every: z.union(
    [
      scheduleSchema,
      z.strictObject({ afterRuns: z.number().int().min(1, 'after at least 1 run').max(1000) }),
    ],
    { error: 'expected a schedule ({ "rate": "1 days" } or { "cron": ... }) or { "afterRuns": N }' },
  ),
  /** "none": every VIF is removed; else the destination network (uuid or name) the VIFs move to. */
  network: z.union([z.literal('none'), objectSelector]).default('none'),
  /** tools: the guest agent reports (PV drivers or an OS version); xenstore: the guest writes this key. */
  check: z
    .union(
      [
        z.literal('tools'),
        z.strictObject({
          xenstore: z.string().regex(/^vm-data\/[^\s]+$/, 'a key under vm-data/, e.g. "vm-data/xcr-drill"'),
        }),
      ],
      { error: 'expected "tools" or { "xenstore": "vm-data/xcr-drill" }' },
    )
    .default('tools'),
  /** How long a clone may take to pass the check after VM.start. */
  timeoutMinutes: z.number().positive().max(120, 'at most 120 minutes').default(10),
  /** Clones booted at once. */
  concurrency: z.number().int().min(1).max(10).default(1),
  /** Alarm when no drill of the job has passed for this many days. */
  alarmDays: z
    .number()
    .int()
    .min(1)
    .max(7, 'at most 7: a CloudWatch alarm looks back at most 7 days (period × evaluation periods)')
    .default(7),
});
export type DrillConfig = z.infer<typeof drillSchema>;

/**
 * A job id is part of names AWS limits: the execution (= run) name `<id>-<yyyymmddThhmmssmmmZ>`
 * (80 characters, 20 of them the time; letters, digits, - and _), the execution log group
 * `/aws/vendedlogs/states/xcr/<stack>/<id>` (512; no spaces), construct ids and hence CloudFormation
 * logical ids (255, alphanumeric once the dashes are dropped), the metric dimension `jobId` (1,024)
 * and the lease key. 40 keeps every one of them within its limit with room to spare.
 */
export const JOB_ID_MAX = 40;
/** The job name goes into the schedule's description (Scheduler allows 512) after "xcr job <id>: ". */
export const JOB_NAME_MAX = 256;

/** An inline Map state runs at most 40 iterations concurrently (Step Functions quota). */
export const MAX_MAP_CONCURRENCY = 40;

export const jobSchema = z.strictObject({
  id: z
    .string()
    .regex(
      new RegExp(`^[a-z0-9](?:[a-z0-9-]{0,${JOB_ID_MAX - 2}}[a-z0-9])?$`),
      `lower-case letters, digits and dashes (not at either end), at most ${JOB_ID_MAX}, e.g. "web-servers"`,
    ),
  name: z
    .string()
    .max(JOB_NAME_MAX, `at most ${JOB_NAME_MAX} characters (it becomes the schedule's description)`)
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    .regex(/^[^\x00-\x1f\x7f]*$/, 'no control characters (tabs, newlines)')
    .optional(),
  source: z.strictObject({ pool: z.string().min(1) }),
  destination: z
    .strictObject({
      pool: z.string().min(1),
      sr: objectSelector,
      /** Shorthand for networkMap { "*": <this network> }: every VIF lands on it. */
      network: objectSelector.optional(),
      /**
       * Source network (uuid, name_label or "*") → destination network (uuid or name_label). When
       * given, only its entries apply; without any map: same uuid, else same name, else the
       * destination pool's default network (functions/replication/network-map.ts).
       */
      networkMap: z
        .record(
          z.string().min(1, 'a source network uuid, name or "*"'),
          z.string().min(1, 'a destination network uuid or name'),
        )
        .refine((m) => Object.keys(m).length > 0, 'list at least one network, or leave networkMap out')
        .optional(),
    })
    .refine((d) => !(d.network && d.networkMap), {
      message:
        'give either destination.network (one network for every VIF) or destination.networkMap, not both',
      path: ['networkMap'],
    }),
  vms: z.union(
    [
      z.strictObject({ uuids: z.array(z.string().uuid('a VM uuid')).min(1, 'list at least one VM uuid') }),
      z.strictObject({ tag: z.string().min(1) }),
    ],
    { error: 'expected { "uuids": ["..."] } or { "tag": "replicate" }' },
  ),
  schedule: jobScheduleSchema,
  /** Recovery points kept on the destination (newest first). */
  retention: z.number().int().min(1, 'keep at least 1 recovery point').max(100).default(3),
  /** Force a full copy every N runs; 0 = never. */
  fullInterval: z.number().int().min(0).default(0),
  /** VMs replicated in parallel (a Step Functions inline Map runs at most 40 iterations at once). */
  concurrency: z
    .number()
    .int()
    .min(1)
    .max(
      MAX_MAP_CONCURRENCY,
      `at most ${MAX_MAP_CONCURRENCY}: a Step Functions inline Map runs at most 40 iterations at once`,
    )
    .default(2),
  /**
   * Disks of one VM streamed side by side in one stream-delta invocation (each its own HTTP or NBD
   * stream: one XAPI stream over TLS gives 60-90 MB/s, so throughput comes from parallel streams).
   * A job has at most concurrency × diskStreams streams open at once. Default 1: one disk after the
   * other, as before; 2-4 when the hosts have bandwidth to spare.
   */
  diskStreams: z.number().int().min(1).max(8, 'at most 8 streams per VM').default(1),
  /**
   * Streams of every job of this deployment reading from the job's source pool at once (slots held
   * in the lease store, so they bind across functions); unset = only concurrency × diskStreams.
   */
  sourceStreamLimit: z.number().int().min(1).max(256).optional(),
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
  /** Recovery drills: boot the newest recovery points in isolation, check the guest, remove everything. */
  drill: drillSchema.optional(),
});
export type JobConfig = z.infer<typeof jobSchema>;

export const deploymentSchema = z.strictObject({
  /** The AWS account the stack deploys to; pins the stack (default: the CDK CLI's environment). */
  account: z
    .string()
    .regex(/^\d{12}$/, 'a 12-digit AWS account id')
    .optional(),
  /** The region the stack deploys to, e.g. "eu-west-1"; subnets, AZs and secrets must be there. */
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'a region name such as "eu-west-1"')
    .optional(),
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
      const every = job.drill?.every;
      if (every && 'afterRuns' in every && every.afterRuns > job.retention) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', i, 'drill', 'every', 'afterRuns'],
          message: `at most the job's retention (${job.retention}): the runs since the last drill are counted on the recovery points kept; raise retention or lower afterRuns`,
        });
      }
      const tooOften = vhdScheduleProblem(job.schedule, job.transferMode);
      if (tooOften)
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', i, 'schedule', tooOften.path],
          message: tooOften.message,
        });
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
