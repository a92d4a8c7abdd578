/** A lease could not be decided after many attempts because other writers kept changing it. */
export class LeaseContentionError extends Error {
  override readonly name = 'LeaseContentionError';
  constructor(
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`lease ${JSON.stringify(key)}: state kept changing, gave up after ${attempts} attempts`);
  }
}

export function checkLeaseArgs(key: string, owner: string, ttlMs?: number): void {
  if (key.length === 0) throw new RangeError('lease key must not be empty');
  if (owner.length === 0) throw new RangeError('lease owner must not be empty');
  if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0)) {
    throw new RangeError(`lease ttlMs must be a positive finite number, got ${ttlMs}`);
  }
}
