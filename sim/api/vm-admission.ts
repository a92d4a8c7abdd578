/** VM operation admission (xapi_vm_lifecycle check_operation_error), in xapi's order. */
import { XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import type { XRecord } from '../wire/values.js';

export type PowerState = 'Halted' | 'Paused' | 'Running' | 'Suspended';

function allowedStates(op: string, isSnapshot: boolean): PowerState[] | undefined {
  switch (op) {
    case 'snapshot':
    case 'revert':
      return undefined;
    case 'clone':
    case 'copy':
      return isSnapshot ? ['Halted', 'Suspended'] : ['Halted'];
    case 'destroy':
    case 'export':
      return ['Halted', 'Suspended'];
    case 'start':
    case 'create_vtpm':
    case 'changing_NVRAM':
      return ['Halted'];
    case 'clean_shutdown':
      return ['Running'];
    case 'hard_shutdown':
    case 'checkpoint':
      return ['Paused', 'Suspended', 'Running'];
    default:
      return undefined;
  }
}

const TEMPLATE_OK = new Set(['clone', 'copy', 'export', 'metadata_export', 'provision', 'destroy']);
const SNAPSHOT_OK = new Set([
  'revert',
  'clone',
  'copy',
  'export',
  'destroy',
  'hard_shutdown',
  'metadata_export',
]);

/** xapi_vm_lifecycle check_operation_error, in its order; the first failure wins. */
export function checkVmOperation(pool: PoolState, vm: string, op: string): void {
  const rec = pool.db.get('VM', vm);
  const blocked = rec.blocked_operations as XRecord;
  if (op in blocked) throw new XapiError('OPERATION_BLOCKED', [vm, String(blocked[op])]);
  const allowed = allowedStates(op, rec.is_a_snapshot === true);
  const ps = String(rec.power_state);
  if (allowed && !allowed.includes(ps as PowerState)) {
    throw new XapiError('VM_BAD_POWER_STATE', [
      vm,
      allowed.map((s) => s.toLowerCase()).join(', '),
      ps.toLowerCase(),
    ]);
  }
  if (
    rec.is_a_template === true &&
    rec.is_a_snapshot !== true &&
    !TEMPLATE_OK.has(op) &&
    !op.startsWith('changing_')
  ) {
    throw new XapiError('VM_IS_TEMPLATE', [vm, op]);
  }
  if (rec.is_a_snapshot === true && !SNAPSHOT_OK.has(op)) throw new XapiError('VM_IS_SNAPSHOT', [vm, op]);
  if (rec.is_control_domain === true && op !== 'snapshot') {
    throw new XapiError('OPERATION_NOT_ALLOWED', ['This operation is not allowed on the control domain']);
  }
  const vtpms = rec.VTPMs as string[];
  if (op === 'create_vtpm' && vtpms.length > 0) {
    throw new XapiError('VTPM_MAX_AMOUNT_REACHED', [String(vtpms.length)]);
  }
}
