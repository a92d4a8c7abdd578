import {
  checkIndex,
  checkRange,
  checkWorkList,
  type RunStore,
  type StoredRecord,
  type StoredResult,
} from '../../functions/runstore/port.js';

/** A RunStore in memory for fake-step runs of thousands of VMs (held to the same contract test). */
export class MemoryRunStore implements RunStore {
  private readonly runs = new Map<string, { work: string[]; results: Map<number, string> }>();

  private run(runId: string) {
    let run = this.runs.get(runId);
    if (!run) {
      run = { work: [], results: new Map() };
      this.runs.set(runId, run);
    }
    return run;
  }

  async putWorkList(runId: string, vmUuids: readonly string[]): Promise<void> {
    checkWorkList(runId, vmUuids);
    this.run(runId).work = [...vmUuids];
  }

  async readWorkList(runId: string, start: number, end: number): Promise<string[]> {
    checkRange(runId, start, end);
    return (this.runs.get(runId)?.work ?? []).slice(start, end);
  }

  async putResult(runId: string, index: number, record: StoredRecord): Promise<void> {
    checkIndex(runId, index);
    // Stored as JSON, as both real adapters do: no reference to the caller's object survives.
    this.run(runId).results.set(index, JSON.stringify(record));
  }

  async readResults(runId: string, start: number, end: number): Promise<StoredResult[]> {
    checkRange(runId, start, end);
    const results = this.runs.get(runId)?.results ?? new Map<number, string>();
    return [...results]
      .filter(([i]) => i >= start && i < end)
      .sort(([a], [b]) => a - b)
      .map(([index, text]) => ({ index, record: JSON.parse(text) as StoredRecord }));
  }

  async deleteRun(runId: string): Promise<void> {
    if (runId.length === 0) throw new RangeError('run store: runId must not be empty');
    this.runs.delete(runId);
  }
}
