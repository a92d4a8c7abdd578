/**
 * Removing drill clones: this drill's at its end (teardown), or what crashed drills left (the next
 * drill, the next replication run). Reads records, lets `planDrillSweep` decide, carries it out;
 * objects already gone are skipped, so an interrupted teardown is simply repeated.
 */
import type { Xapi } from '../../xapi/index.js';
import { type PoolRecords, removePlanned, sweepRecords } from '../cleanup.js';
import { planDrillSweep } from '../rules/drill.js';

/** Stops and destroys drill clones and their disks; returns "VM <uuid>" / "VDI <uuid>" removed. */
export async function removeDrillClones(
  xapi: Xapi,
  jobId: string,
  scope: { liveRun?: string; only?: string; point?: string },
  /** The pool's records when the caller has just read them (lock-check: one listing per run). */
  records?: PoolRecords,
): Promise<string[]> {
  return removePlanned(xapi, planDrillSweep({ jobId, ...scope, ...(records ?? (await sweepRecords(xapi))) }));
}
