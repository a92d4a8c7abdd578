/**
 * The errors a step throws. Their `name` is the vocabulary of the state machine's Retry/Catch:
 * transient ones are retried, permanent ones go to rollback at once. `code` is the XAPI error code
 * (or an xcr code) so a run result can report it.
 */
export class XcrTransientError extends Error {
  override readonly name = 'XcrTransientError';
  constructor(
    readonly code: string,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export class XcrPermanentError extends Error {
  override readonly name = 'XcrPermanentError';
  constructor(
    readonly code: string,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export type XcrError = XcrTransientError | XcrPermanentError;

/** XAPI codes worth another attempt of the whole step. */
const TRANSIENT_XAPI_CODES = new Set([
  'TOO_MANY_PENDING_TASKS',
  'VDI_IN_USE',
  'OTHER_OPERATION_IN_PROGRESS',
  'SESSION_INVALID',
  'HOST_IS_SLAVE',
  'HOST_OFFLINE',
  'HOST_STILL_BOOTING',
  'VDI_IO_ERROR',
  'TASK_CANCELLED',
  // SM's "The VDI is not available": e.g. a VDI the garbage collector has paused or is relinking
  // (activation gives up after 120 s); it comes back once the coalesce step ends.
  'SR_BACKEND_FAILURE_46',
]);

const NETWORK_ERRNO = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

interface CodedError {
  name: string;
  message: string;
  code?: unknown;
  params?: unknown;
}

/** Turns anything a step caught into a typed xcr error (ConfigError passes through). */
export function classifyError(err: unknown): Error {
  if (err instanceof XcrTransientError || err instanceof XcrPermanentError) return err;
  if (!(err instanceof Error)) return new XcrPermanentError('INTERNAL_ERROR', String(err));
  const e = err as CodedError;
  if (e.name === 'ConfigError') return err;
  if (e.name === 'XapiError' && typeof e.code === 'string') {
    return TRANSIENT_XAPI_CODES.has(e.code)
      ? new XcrTransientError(e.code, e.message)
      : new XcrPermanentError(e.code, e.message);
  }
  // Network trouble and streams cut short: the step is idempotent, so another attempt is safe.
  if (e.name === 'XapiTransportError') return new XcrTransientError('TRANSPORT_ERROR', e.message);
  if (e.name === 'VhdFormatError') {
    const code = typeof e.code === 'string' ? `VHD_${e.code}` : 'VHD_INVALID';
    return e.code === 'TRUNCATED'
      ? new XcrTransientError(code, e.message)
      : new XcrPermanentError(code, e.message);
  }
  // NBD reads (cbt mode): a dropped connection or a timeout is worth another attempt of the step.
  if (e.name.startsWith('Nbd')) {
    const retryable = (err as { retryable?: unknown }).retryable === true;
    return retryable
      ? new XcrTransientError('NBD_ERROR', e.message)
      : new XcrPermanentError('NBD_ERROR', e.message);
  }
  if (e.name === 'AbortError' || e.name === 'TimeoutError')
    return new XcrTransientError('TIMEOUT', e.message);
  // A socket that broke under a stream (the import side reset, the export side vanished).
  if (typeof e.code === 'string' && NETWORK_ERRNO.has(e.code)) {
    return new XcrTransientError('TRANSPORT_ERROR', e.message);
  }
  return new XcrPermanentError('INTERNAL_ERROR', e.message);
}

/** The error code inside a Step Functions failure ({Error, Cause}), for run results. */
export function failureCode(failure: { Error: string; Cause?: string }): { code: string; message: string } {
  let message = failure.Cause ?? failure.Error;
  try {
    const parsed = JSON.parse(message) as { errorMessage?: string };
    if (parsed && typeof parsed.errorMessage === 'string') message = parsed.errorMessage;
  } catch {
    // Cause is plain text in the local runner.
  }
  const m = /^([A-Z][A-Z0-9_]+): /.exec(message);
  return { code: m ? m[1]! : failure.Error, message };
}
