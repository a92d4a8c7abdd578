import { rateMinutes, type ScheduleConfig } from '../functions/config/schema.js';

/** Milliseconds between runs of a rate schedule (cron schedules are for EventBridge Scheduler). */
export function scheduleIntervalMs(schedule: ScheduleConfig): number {
  if (!('rate' in schedule)) {
    throw new Error('--watch follows rate schedules only; cron schedules run on AWS (EventBridge Scheduler)');
  }
  return rateMinutes(schedule.rate)! * 60_000;
}

export interface ScheduleLoop {
  intervalMs: number;
  cycles: number;
  /** Called at each tick; a tick does not wait for the previous run (an overlap is the lease's business). */
  onTick(tick: number, at: Date): Promise<void>;
  signal?: AbortSignal;
  /** Awaited when a tick is due, before it fires (the demo keeps its compressed clock behind its runs). */
  beforeTick?(tick: number): Promise<void>;
}

/** Fires `cycles` ticks `intervalMs` apart, like a scheduler would, then waits for the runs to end. */
export async function runSchedule(loop: ScheduleLoop): Promise<void> {
  const started = Date.now();
  const running: Promise<void>[] = [];
  for (let tick = 0; tick < loop.cycles && !loop.signal?.aborted; tick++) {
    const due = started + tick * loop.intervalMs;
    const wait = due - Date.now();
    if (wait > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        loop.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await loop.beforeTick?.(tick);
    if (loop.signal?.aborted) break;
    running.push(loop.onTick(tick, new Date()));
  }
  await Promise.all(running);
}
