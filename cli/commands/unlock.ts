import { FileLeaseStore } from '../../functions/lease/file.js';
import { leaseKey } from '../../functions/replication/context.js';
import { defaultStateDir } from '../local-deps.js';
import { EXIT, type GlobalOptions, jobOf, load, print } from './common.js';

/**
 * `xcr unlock <job>`: clears the local lease a crashed run left, so the next run need not wait for
 * it to expire. Refuses while the holder is alive (or, on another host, without --force).
 */
export async function unlockCommand(
  jobId: string | undefined,
  opts: GlobalOptions & { force?: boolean },
): Promise<number> {
  const job = jobOf(load(opts), jobId);
  const cleared = await new FileLeaseStore(defaultStateDir()).unlock(leaseKey(job.id), { force: opts.force });
  print(opts, { jobId: job.id, cleared: cleared ?? null }, () =>
    cleared ? `job ${job.id}: cleared the lease of run ${cleared}` : `job ${job.id}: no run holds the lease`,
  );
  return EXIT.ok;
}
