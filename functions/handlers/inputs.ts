import { z } from 'zod';
import { ConfigError } from '../config/load.js';

/** Input schemas of the steps: a malformed payload is a configuration error, named by field. */
const id = z.string().min(1);
const failure = z.object({ Error: z.string(), Cause: z.string().optional() }).optional();

export const lockCheckInput = z.object({ jobId: id, runId: id, scheduledTime: z.string().optional() });

export const vmItemInput = z.object({ jobId: id, runId: id, vmUuid: id, startedAt: z.string() });

const diskPlan = z.object({
  userdevice: z.string(),
  sourceVdi: id,
  baseVdi: z.string().optional(),
  targetVdi: id,
  kind: z.enum(['full', 'delta']),
  fullReason: z.string().optional(),
  virtualSize: z.number(),
  bytes: z.number(),
  done: z.boolean(),
  mode: z.enum(['vhd', 'cbt']).optional(),
  modeReason: z.string().optional(),
  cursor: z.number().int().nonnegative().optional(),
  chainDepth: z.number().int().positive().optional(),
});

export const vmStateInput = z.object({
  jobId: id,
  runId: id,
  vmUuid: id,
  startedAt: z.string(),
  sourceSnapshot: z.string().optional(),
  disks: z.array(diskPlan).default([]),
  chain: z.number().default(0),
  done: z.boolean().default(false),
  warnings: z.array(z.string()).default([]),
  failure,
});

/** commit-or-rollback may receive a failure before snapshot-previous produced a state. */
export const commitInput = vmStateInput.extend({
  startedAt: z.string().default(() => new Date().toISOString()),
});

const vmResult = z.object({
  vmUuid: z.string(),
  status: z.enum(['succeeded', 'failed']),
  kind: z.enum(['full', 'delta']).optional(),
  bytes: z.number(),
  durationMs: z.number(),
  recoveryPoint: z.string().optional(),
  modes: z
    .array(z.object({ userdevice: z.string(), mode: z.enum(['vhd', 'cbt']), reason: z.string().optional() }))
    .optional(),
  errorCode: z.string().optional(),
  message: z.string().optional(),
  warnings: z.array(z.string()).optional(),
  chainDepth: z.number().int().positive().optional(),
});

export const finishRunInput = z.object({
  jobId: id,
  runId: id,
  startedAt: z.string(),
  status: z.enum(['acquired', 'skipped']),
  reason: z.string().optional(),
  vms: z.array(z.object({ jobId: id, runId: id, vmUuid: id, startedAt: z.string() })),
  results: z.array(vmResult).optional(),
  mapFailure: failure,
});

export function parseInput<T>(schema: z.ZodType<T>, input: unknown, step: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((i) => `${i.path.map(String).join('.') || '(input)'}: ${i.message}`),
    `${step} input`,
  );
}
