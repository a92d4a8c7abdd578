import { describe, expect, it } from 'vitest';
import { forgetRemoved, type PoolRecords } from '../../../functions/replication/cleanup.js';

const vm = (ref: string, uuid: string) => ({
  ref,
  uuid,
  other_config: {},
  is_a_snapshot: false,
  power_state: 'Halted',
  snapshotOf: '',
});
const vdi = (ref: string, uuid: string, vms: string[]) => ({
  ref,
  uuid,
  other_config: {},
  is_a_snapshot: false,
  vms,
});

describe('one listing shared by several sweeps', () => {
  const records: PoolRecords = {
    vms: [vm('r1', 'vm-1'), vm('r2', 'vm-2')],
    vdis: [vdi('d1', 'vdi-1', ['r1']), vdi('d2', 'vdi-2', ['r1', 'r2']), vdi('d3', 'vdi-3', [])],
  };

  it.each([
    { removed: [], vms: ['vm-1', 'vm-2'], vdis: { 'vdi-1': ['r1'], 'vdi-2': ['r1', 'r2'], 'vdi-3': [] } },
    // a destroyed VM's VBDs go with it: its disks no longer name it (an orphan for the next sweep)
    { removed: ['VM vm-1'], vms: ['vm-2'], vdis: { 'vdi-1': [], 'vdi-2': ['r2'], 'vdi-3': [] } },
    { removed: ['VDI vdi-3', 'VDI vdi-1'], vms: ['vm-1', 'vm-2'], vdis: { 'vdi-2': ['r1', 'r2'] } },
    { removed: ['VM vm-2', 'VDI vdi-2'], vms: ['vm-1'], vdis: { 'vdi-1': ['r1'], 'vdi-3': [] } },
    // a uuid of the other class, or of nothing listed, changes nothing
    {
      removed: ['VDI vm-1', 'VM nothing'],
      vms: ['vm-1', 'vm-2'],
      vdis: { 'vdi-1': ['r1'], 'vdi-2': ['r1', 'r2'], 'vdi-3': [] },
    },
  ])('after $removed', ({ removed, vms, vdis }) => {
    const out = forgetRemoved(records, removed);
    expect(out.vms.map((v) => v.uuid)).toEqual(vms);
    expect(Object.fromEntries(out.vdis.map((d) => [d.uuid, d.vms]))).toEqual(vdis);
    // the listing it came from is left as it was
    expect(records.vdis[1]!.vms).toEqual(['r1', 'r2']);
  });
});
