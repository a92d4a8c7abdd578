import { randomUUID } from 'node:crypto';
import { link, mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkLeaseArgs, LeaseContentionError } from './errors.js';
import { currentHolder, holderState, type LeaseHolder } from './holder.js';
import { leaseDirName } from './key.js';
import type { LeaseResult, LeaseStore } from './port.js';

export interface FileLeaseStoreOptions {
  now?: () => Date;
}

interface LeaseRecord {
  /** null once released. */
  owner: string | null;
  expiresAtMs: number;
  /** The process that took it (absent in files written before holders were recorded). */
  holder?: LeaseHolder;
}

/** `unlock` refused: the holder may still be running. */
export class LeaseHeldError extends Error {
  override readonly name = 'LeaseHeldError';
  constructor(
    readonly owner: string,
    readonly holder: LeaseHolder | undefined,
    state: 'alive' | 'unknown',
  ) {
    super(
      state === 'alive'
        ? `run ${owner} is still running (pid ${holder?.pid} on this host, since ${holder?.since}); not unlocked`
        : `run ${owner} holds the lease from ${holder ? `host ${holder.host}, pid ${holder.pid}` : 'an unknown process'}, which cannot be checked from here; make sure it is not running, then unlock with --force`,
    );
  }
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
      let tookOverFrom: { owner: string; holder: LeaseHolder } | undefined;
      if (held?.owner && held.owner !== owner && held.expiresAtMs > nowMs) {
        // A holder that provably died (a killed local run) does not block the job until expiry.
        if (!held.holder || holderState(held.holder) !== 'dead') {
          return {
            acquired: false,
            holder: held.owner,
            expiresAt: new Date(held.expiresAtMs),
            ...(held.holder ? { holderInfo: held.holder } : {}),
          };
        }
        tookOverFrom = { owner: held.owner, holder: held.holder };
      }
      const since = held?.owner === owner && held.holder ? held.holder.since : this.now().toISOString();
      const next = { owner, expiresAtMs: nowMs + ttlMs, holder: currentHolder(since) };
      if (await commit(keyDir, cur.gen + 1, next))
        return { acquired: true, ...(tookOverFrom ? { tookOverFrom } : {}) };
    }
    throw new LeaseContentionError(key, MAX_ATTEMPTS);
  }

  async release(key: string, owner: string): Promise<boolean> {
    checkLeaseArgs(key, owner);
    const keyDir = this.keyDir(key);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const cur = await readCurrent(keyDir);
      if (cur.record?.owner !== owner) return false;
      if (await commit(keyDir, cur.gen + 1, { owner: null, expiresAtMs: this.now().getTime() })) return true;
    }
    throw new LeaseContentionError(key, MAX_ATTEMPTS);
  }

  /**
   * Clears a lease whatever run holds it (`xcr unlock`), but only when its holder provably is not
   * running: dead on this machine, or `force` for a holder elsewhere. Returns the owner it cleared.
   */
  async unlock(key: string, o: { force?: boolean } = {}): Promise<string | undefined> {
    const keyDir = this.keyDir(key);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const cur = await readCurrent(keyDir);
      const held = cur.record;
      if (!held?.owner || held.expiresAtMs <= this.now().getTime()) return undefined;
      const state = held.holder ? holderState(held.holder) : 'unknown';
      if (state === 'alive' || (state === 'unknown' && !o.force))
        throw new LeaseHeldError(held.owner, held.holder, state);
      if (await commit(keyDir, cur.gen + 1, { owner: null, expiresAtMs: this.now().getTime() }))
        return held.owner;
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
  const body = { ...record, expiresAt: new Date(record.expiresAtMs).toISOString() };
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
  const { owner, expiresAtMs, holder } = v as Record<string, unknown>;
  if ((typeof owner !== 'string' && owner !== null) || typeof expiresAtMs !== 'number') return undefined;
  return { owner, expiresAtMs, ...(isHolder(holder) ? { holder } : {}) };
}

function isHolder(v: unknown): v is LeaseHolder {
  if (typeof v !== 'object' || v === null) return false;
  const h = v as Record<string, unknown>;
  return (
    typeof h.host === 'string' &&
    typeof h.pid === 'number' &&
    typeof h.pidStart === 'string' &&
    typeof h.since === 'string'
  );
}

function genFileName(gen: number): string {
  return `${String(gen).padStart(12, '0')}.json`;
}

function errCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}
