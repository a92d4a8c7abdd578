import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkIndex,
  checkRange,
  checkWorkList,
  indexKey,
  RUN_DATA_TTL_MS,
  type RunStore,
  type StoredRecord,
  type StoredResult,
} from './port.js';

export interface FileRunStoreOptions {
  now?: () => Date;
  /** @default RUN_DATA_TTL_MS */
  ttlMs?: number;
}

interface Meta {
  expiresAtMs: number;
}

const RESULT_FILE = /^(\d+)\.json$/;

/**
 * Run store in local files: one directory per run under `dir`, holding the work list (one JSON
 * array, read whole: a local run lists what one machine replicates) and one file per recorded
 * result, written to a temporary name and renamed, so a reader never sees half a record and
 * concurrent VMs never write the same file. Runs whose data outlived the TTL (a process that died
 * before deleting it) are removed when the next run writes its work list.
 */
export class FileRunStore implements RunStore {
  private readonly now: () => Date;
  private readonly ttlMs: number;

  constructor(
    private readonly dir: string,
    o: FileRunStoreOptions = {},
  ) {
    this.now = o.now ?? (() => new Date());
    this.ttlMs = o.ttlMs ?? RUN_DATA_TTL_MS;
  }

  async putWorkList(runId: string, vmUuids: readonly string[]): Promise<void> {
    checkWorkList(runId, vmUuids);
    await this.expireOld();
    const run = this.runDir(runId);
    await mkdir(join(run, 'results'), { recursive: true });
    const meta: Meta = { expiresAtMs: this.now().getTime() + this.ttlMs };
    await atomicWrite(join(run, 'meta.json'), JSON.stringify(meta));
    await atomicWrite(join(run, 'work.json'), JSON.stringify(vmUuids));
  }

  async readWorkList(runId: string, start: number, end: number): Promise<string[]> {
    checkRange(runId, start, end);
    const text = await readIfExists(join(this.runDir(runId), 'work.json'));
    return text === undefined ? [] : (JSON.parse(text) as string[]).slice(start, end);
  }

  async putResult(runId: string, index: number, record: StoredRecord): Promise<void> {
    checkIndex(runId, index);
    const results = join(this.runDir(runId), 'results');
    await mkdir(results, { recursive: true });
    await atomicWrite(join(results, `${indexKey(index)}.json`), JSON.stringify(record));
  }

  async readResults(runId: string, start: number, end: number): Promise<StoredResult[]> {
    checkRange(runId, start, end);
    const results = join(this.runDir(runId), 'results');
    let names: string[];
    try {
      names = await readdir(results);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const indexes = names
      .map((n) => RESULT_FILE.exec(n)?.[1])
      .filter((m): m is string => m !== undefined)
      .map(Number)
      .filter((i) => i >= start && i < end)
      .sort((a, b) => a - b);
    const out: StoredResult[] = [];
    for (const index of indexes) {
      const text = await readIfExists(join(results, `${indexKey(index)}.json`));
      if (text !== undefined) out.push({ index, record: JSON.parse(text) as StoredRecord });
    }
    return out;
  }

  async deleteRun(runId: string): Promise<void> {
    if (runId.length === 0) throw new RangeError('run store: runId must not be empty');
    await rm(this.runDir(runId), { recursive: true, force: true });
  }

  private runDir(runId: string): string {
    // Run ids are execution names; encoded so that none can name a path outside `dir`.
    return join(
      this.dir,
      encodeURIComponent(runId).replace(/^\.+/, (dots) => '%2E'.repeat(dots.length)),
    );
  }

  private async expireOld(): Promise<void> {
    let runs: string[];
    try {
      runs = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const nowMs = this.now().getTime();
    for (const name of runs) {
      const text = await readIfExists(join(this.dir, name, 'meta.json'));
      if (text === undefined) continue;
      const meta = JSON.parse(text) as Meta;
      if (meta.expiresAtMs <= nowMs) await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function atomicWrite(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
