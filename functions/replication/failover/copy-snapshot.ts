/**
 * A snapshot of a DR copy owned by a failover or failback run (the CBT baseline a failover takes,
 * the reverse snapshots a failback takes): taken once per run, found again by its keys or by the
 * pending name it was taken under, tagged with the run's keys, and its disks too.
 */
import type { VmRecord, Xapi } from '../../xapi/index.js';
import type { Ref } from '../inventory.js';
import { vmDisks } from '../inventory.js';
import { type FO_ROLE, KEY, pendingFailoverName } from '../metadata.js';

type Role = (typeof FO_ROLE)[keyof typeof FO_ROLE];

export const withoutXcr = (m: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('xcr:')));

const gone = (err: unknown) => (err as { code?: string }).code === 'HANDLE_INVALID';

export async function copySnapshot(
  dest: Xapi,
  o: {
    jobId: string;
    run: string;
    copy: Ref<VmRecord>;
    role: Role;
    diskRole: Role;
    /** The snapshot's name once tagged. */
    label: string;
  },
): Promise<Ref<VmRecord>> {
  const pending = pendingFailoverName(o.jobId, o.run);
  let ref: string | undefined;
  for (const s of o.copy.rec.snapshots) {
    const rec = await dest.getRecord('VM', s).catch((err: unknown) => {
      if (gone(err)) return undefined;
      throw err;
    });
    const oc = rec?.other_config ?? {};
    const ours = oc[KEY.foRun] === o.run && oc[KEY.foRole] === o.role;
    if (rec && (ours || rec.name_label === pending)) ref = s;
  }
  ref ??= await dest.callAsync<string>('VM.snapshot', o.copy.ref, pending);
  const rec = await dest.getRecord('VM', ref);
  const keys = { [KEY.foJob]: o.jobId, [KEY.foRun]: o.run, [KEY.vm]: o.copy.rec.other_config[KEY.vm] ?? '' };
  for (const d of await vmDisks(dest, rec)) {
    if (d.vdi.rec.other_config[KEY.self] === d.vdi.rec.uuid) continue;
    await dest.call('VDI.set_other_config', d.vdi.ref, {
      ...withoutXcr(d.vdi.rec.other_config),
      ...keys,
      [KEY.foRole]: o.diskRole,
      [KEY.self]: d.vdi.rec.uuid,
    });
  }
  if (rec.other_config[KEY.self] !== rec.uuid) {
    await dest.call('VM.set_other_config', ref, {
      ...withoutXcr(rec.other_config),
      ...keys,
      [KEY.foRole]: o.role,
      [KEY.self]: rec.uuid,
    });
    await dest.call('VM.set_name_label', ref, o.label);
  }
  return { ref, rec: await dest.getRecord('VM', ref) };
}
