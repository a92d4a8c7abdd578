/**
 * Removing drill clones: this drill's at its end (teardown), or what crashed drills left (the next
 * drill, the next replication run). Reads records, lets `planDrillSweep` decide, carries it out;
 * objects already gone are skipped, so an interrupted teardown is simply repeated.
 */
import type { Xapi } from '../../xapi/index.js';
import { removePlanned, sweepRecords } from '../cleanup.js';
import { planDrillSweep } from '../rules/drill.js';

/** Stops and destroys drill clones and their disks; returns "VM <uuid>" / "VDI <uuid>" removed. */
export async function removeDrillClones(
  xapi: Xapi,
  jobId: string,
  scope: { liveRun?: string; only?: string; point?: string },
): Promise<string[]> {
  return removePlanned(xapi, planDrillSweep({ jobId, ...scope, ...(await sweepRecords(xapi)) }));
}
