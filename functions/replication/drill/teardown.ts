/**
 * Removing drill clones: this drill's at its end (teardown), or what crashed drills left (the next
 * drill, the next replication run). Reads records, lets `planDrillSweep` decide, carries it out;
 * objects already gone are skipped, so an interrupted teardown is simply repeated.
 */
import type { Xapi } from '../../xapi/index.js';
import { sweepRecords } from '../cleanup.js';
import { planDrillSweep } from '../rules/drill.js';

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

/** Stops and destroys drill clones and their disks; returns "VM <uuid>" / "VDI <uuid>" removed. */
export async function removeDrillClones(
  xapi: Xapi,
  jobId: string,
  scope: { liveRun?: string; only?: string; point?: string },
): Promise<string[]> {
  const plan = planDrillSweep({ jobId, ...scope, ...(await sweepRecords(xapi)) });
  const removed: string[] = [];
  for (const vm of plan.vms) {
    try {
      if (vm.running) {
        const ps = await xapi.call<string>('VM.get_power_state', vm.ref);
        if (ps !== 'Halted') await xapi.callAsync('VM.hard_shutdown', vm.ref);
      }
      await xapi.destroy('VM', vm.ref);
      removed.push(`VM ${vm.uuid}`);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
  for (const vdi of plan.vdis) {
    try {
      await xapi.destroy('VDI', vdi.ref);
      removed.push(`VDI ${vdi.uuid}`);
    } catch (err) {
      if (!gone(err)) throw err;
    }
  }
  return removed;
}
