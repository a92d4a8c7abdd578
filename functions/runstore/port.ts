/**
 * The run store port: what a run keeps outside its Step Functions state, so that no state carries
 * a list that grows with the number of VMs. lock-check writes the run's work list (VM uuids, by
 * index) once; each batch reads its slice by index; each VM's terminal outcome is recorded under
 * its index; finish-run reads both back page by page. Adapters: `file.ts` (local), `dynamo.ts` (AWS).
 *
 * Records are opaque JSON objects here (the replication core parses them with its own schema), so
 * the port knows nothing of the workflow's payloads.
 */
export type StoredRecord = Readonly<Record<string, unknown>>;

export interface StoredResult {
  index: number;
  record: StoredRecord;
}

export interface RunStore {
  /** Writes the run's work list (index i = vmUuids[i]); called once per run, before any batch. */
  putWorkList(runId: string, vmUuids: readonly string[]): Promise<void>;
  /** The work items with index in [start, end), in index order (fewer at the end of the list). */
  readWorkList(runId: string, start: number, end: number): Promise<string[]>;
  /** Records the terminal outcome of work item `index` (a later record of the same index wins). */
  putResult(runId: string, index: number, record: StoredRecord): Promise<void>;
  /** The recorded results with index in [start, end), in index order; indexes without one are absent. */
  readResults(runId: string, start: number, end: number): Promise<StoredResult[]>;
  /** Removes everything of the run (no error when there is nothing). */
  deleteRun(runId: string): Promise<void>;
}

/** How long a run's data is kept when nobody deletes it (the stores expire it after this). */
export const RUN_DATA_TTL_MS = 14 * 24 * 60 * 60 * 1000;

/** Indexes are written zero-padded so that they sort as numbers; this bounds the work list. */
export const MAX_WORK_ITEMS = 10_000_000;

export function checkRange(runId: string, start: number, end: number): void {
  if (runId.length === 0) throw new RangeError('run store: runId must not be empty');
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
    throw new RangeError(`run store: bad index range [${start}, ${end})`);
  }
}

export function checkIndex(runId: string, index: number): void {
  if (runId.length === 0) throw new RangeError('run store: runId must not be empty');
  if (!Number.isInteger(index) || index < 0 || index >= MAX_WORK_ITEMS) {
    throw new RangeError(`run store: index ${index} is not an integer in [0, ${MAX_WORK_ITEMS})`);
  }
}

export function checkWorkList(runId: string, vmUuids: readonly string[]): void {
  if (runId.length === 0) throw new RangeError('run store: runId must not be empty');
  if (vmUuids.length > MAX_WORK_ITEMS) {
    throw new RangeError(`run store: ${vmUuids.length} work items, at most ${MAX_WORK_ITEMS}`);
  }
  const empty = vmUuids.findIndex((u) => u.length === 0);
  if (empty >= 0) throw new RangeError(`run store: work item ${empty} is empty`);
}

/** The zero-padded form of an index, as both adapters key it. */
export function indexKey(index: number): string {
  return String(index).padStart(String(MAX_WORK_ITEMS - 1).length, '0');
}
