/** The one wait-and-retry helper: exponential backoff, abortable. */

/** The error an aborted signal stands for (its reason, or a plain AbortError). */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface Backoff {
  /** Delay before the first retry, doubled after each one. */
  baseMs: number;
  /** The delay stops growing at baseMs × maxFactor. @default unbounded */
  maxFactor?: number;
}

/** The wait before retry number `attempt` (1 = the first retry). */
export function backoffMs(attempt: number, b: Backoff): number {
  return b.baseMs * Math.min(2 ** (attempt - 1), b.maxFactor ?? Number.POSITIVE_INFINITY);
}

export interface RetryOptions extends Backoff {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Whether this failure is worth another attempt. */
  retryable(err: unknown): boolean;
  onRetry?(err: unknown, attempt: number): void;
  signal?: AbortSignal;
}

/** Runs `fn` until it succeeds, fails with a non-retryable error, or used all its attempts. */
export async function retrying<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= o.attempts || !o.retryable(err)) throw err;
      o.onRetry?.(err, attempt);
      await sleep(backoffMs(attempt, o), o.signal);
    }
  }
}
