import { randomUUID } from 'node:crypto';
import { link, mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkLeaseArgs, LeaseContentionError } from './errors.js';
import { leaseDirName } from './key.js';
import type { LeaseResult, LeaseStore } from './port.js';

export interface FileLeaseStoreOptions {
  now?: () => Date;
}

interface LeaseRecord {
  /** null once released. */
  owner: string | null;
  expiresAtMs: number;
}

interface Current {
  gen: number;
  record: LeaseRecord | undefined;
}

const GEN_FILE = /^(\d{12,})\.json$/;
const TMP_PREFIX = '.tmp-';
const STALE_TMP_MS = 60_000;
const MAX_ATTEMPTS = 1000;

/**
 * Lease in local files, safe across processes on one machine, without lock files.
 *
 * Each key is a directory holding a log of generations `<n>.json`; the highest one is the lease
 * state. A change from generation n is written as n+1 with `link()` from a complete temporary
 * file, which fails when n+1 exists: that is a compare-and-swap, so of several writers that read
 * generation n exactly one gets to decide the next state. Older generations are pruned; a writer
 * that acted on a pruned generation is caught by checking, after its write, that its generation
 * is still the highest. No guard file means nothing can go stale when a process dies mid-way.
 */
export class FileLeaseStore implements LeaseStore {
  private readonly now: () => Date;

  constructor(
    private readonly dir: string,
    o: FileLeaseStoreOptions = {},
  ) {
    this.now = o.now ?? (() => new Date());
  }

  async acquire(key: string, owner: string, ttlMs: number): Promise<LeaseResult> {
    checkLeaseArgs(key, owner, ttlMs);
    const keyDir = this.keyDir(key);
    await mkdir(keyDir, { recursive: true });
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const cur = await readCurrent(keyDir);
      const nowMs = this.now().getTime();
      const held = cur.record;
      if (held?.owner && held.owner !== owner && held.expiresAtMs > nowMs) {
        return { acquired: false, holder: held.owner, expiresAt: new Date(held.expiresAtMs) };
      }
      if (await commit(keyDir, cur.gen + 1, { owner, expiresAtMs: nowMs + ttlMs })) return { acquired: true };
    }
    throw new LeaseContentionError(key, MAX_ATTEMPTS);
  }

  async release(key: string, owner: string): Promise<void> {
    checkLeaseArgs(key, owner);
    const keyDir = this.keyDir(key);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const cur = await readCurrent(keyDir);
      if (cur.record?.owner !== owner) return;
      if (await commit(keyDir, cur.gen + 1, { owner: null, expiresAtMs: this.now().getTime() })) return;
    }
    throw new LeaseContentionError(key, MAX_ATTEMPTS);
  }

  private keyDir(key: string): string {
    return join(this.dir, leaseDirName(key));
  }
}

/** Writes generation `gen`; true only if it was free and is still the newest afterwards. */
async function commit(keyDir: string, gen: number, record: LeaseRecord): Promise<boolean> {
  const tmp = join(keyDir, `${TMP_PREFIX}${process.pid}-${randomUUID()}`);
  const body = { ...record, expiresAt: new Date(record.expiresAtMs).toISOString(), pid: process.pid };
  await writeFile(tmp, `${JSON.stringify(body)}\n`, { flag: 'wx' });
  try {
    await link(tmp, join(keyDir, genFileName(gen)));
  } catch (err) {
    if (errCode(err) === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  // A generation we read may have been pruned and its number reused by us: only the highest counts.
  const listing = await listGens(keyDir);
  if (Math.max(...listing.gens) !== gen) return false;
  await prune(keyDir, gen, listing);
  return true;
}

async function readCurrent(keyDir: string): Promise<Current> {
  for (;;) {
    const { gens } = await listGens(keyDir);
    if (gens.length === 0) return { gen: 0, record: undefined };
    const gen = Math.max(...gens);
    let text: string;
    try {
      text = await readFile(join(keyDir, genFileName(gen)), 'utf8');
    } catch (err) {
      if (errCode(err) === 'ENOENT') continue; // pruned: a newer generation exists now
      throw err;
    }
    return { gen, record: parseRecord(text) };
  }
}

interface Listing {
  gens: number[];
  tmps: string[];
}

async function listGens(keyDir: string): Promise<Listing> {
  let names: string[];
  try {
    names = await readdir(keyDir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') return { gens: [], tmps: [] };
    throw err;
  }
  const gens: number[] = [];
  const tmps: string[] = [];
  for (const name of names) {
    const m = GEN_FILE.exec(name);
    if (m?.[1]) gens.push(Number(m[1]));
    else if (name.startsWith(TMP_PREFIX)) tmps.push(name);
  }
  return { gens, tmps };
}

/** Best effort: older generations and temporary files left by processes that died. */
async function prune(keyDir: string, keep: number, { gens, tmps }: Listing): Promise<void> {
  const cutoff = Date.now() - STALE_TMP_MS;
  await Promise.all([
    ...gens.filter((g) => g < keep).map((g) => unlink(join(keyDir, genFileName(g))).catch(() => undefined)),
    ...tmps.map(async (name) => {
      const path = join(keyDir, name);
      const st = await stat(path).catch(() => undefined);
      if (st && st.mtimeMs < cutoff) await unlink(path).catch(() => undefined);
    }),
  ]);
}

/** A torn or foreign file reads as no lease (free): only a crash or another writer produces one. */
function parseRecord(text: string): LeaseRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { owner, expiresAtMs } = v as Record<string, unknown>;
  if ((typeof owner !== 'string' && owner !== null) || typeof expiresAtMs !== 'number') return undefined;
  return { owner, expiresAtMs };
}

function genFileName(gen: number): string {
  return `${String(gen).padStart(12, '0')}.json`;
}

function errCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}
