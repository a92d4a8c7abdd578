/** The lease port: what a run needs from a lease store. Adapters: `file.ts` (local), `dynamo.ts` (AWS). */
export interface LeaseStore {
  /** Takes the lease, or renews it when `owner` already holds it. */
  acquire(key: string, owner: string, ttlMs: number): Promise<LeaseResult>;
  /** Releases the lease if `owner` holds it; no error otherwise. */
  release(key: string, owner: string): Promise<void>;
}

export type LeaseResult = { acquired: true } | { acquired: false; holder: string; expiresAt: Date };
