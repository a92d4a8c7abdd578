/** One pool's storage behaviour: timing settings, operation marks, the per-SR garbage collectors. */
import type { PoolState, PoolStorageBehaviour } from '../state.js';
import { GarbageCollector } from './gc.js';
import { Operations } from './ops.js';
import { DEFAULT_STORAGE, type StorageSettings } from './settings.js';

export class PoolStorage implements PoolStorageBehaviour {
  settings: StorageSettings;
  readonly ops: Operations;
  readonly gc: GarbageCollector;
  /** thick-provisioning space held by a VDI beyond its blocks (LVM SRs) */
  readonly charges = new Map<string, number>();

  constructor(pool: PoolState, settings: Partial<StorageSettings> = {}) {
    this.settings = { ...DEFAULT_STORAGE, ...settings };
    this.ops = new Operations(pool.db, () => this.settings.retryMs);
    this.gc = new GarbageCollector(pool);
  }
}

export type { StorageSettings } from './settings.js';
