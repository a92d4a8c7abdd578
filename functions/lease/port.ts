/** The lease port: what a run needs from a lease store. Adapters: `file.ts` (local), `dynamo.ts` (AWS). */
export interface LeaseStore {
  /** Takes the lease, or renews it when `owner` already holds it. */
  acquire(key: string, owner: string, ttlMs: number): Promise<LeaseResult>;
  /**
   * Releases the lease if `owner` holds it (also past its expiry, while no one took it over);
   * no error otherwise. True when this call released it, false when `owner` did not hold it.
   */
  release(key: string, owner: string): Promise<boolean>;
}

/** Where a lease store knows it: the process that holds (or held) a lease. */
export interface LeaseHolderInfo {
  host: string;
  pid: number;
  /** ISO time it took the lease. */
  since: string;
}

export type LeaseResult =
  | {
      acquired: true;
      /** The previous holder, when its lease was taken over because it provably died. */
      tookOverFrom?: { owner: string; holder: LeaseHolderInfo };
    }
  | { acquired: false; holder: string; expiresAt: Date; holderInfo?: LeaseHolderInfo };
