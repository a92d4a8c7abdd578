import { isTransient, STEP_ERROR } from '../retry/index.js';

/**
 * The errors a step throws. Their `name` is the vocabulary of the state machine's Retry/Catch:
 * transient ones are retried, permanent ones go to rollback at once. `code` is the XAPI error code
 * (or an xcr code) so a run result can report it.
 */
export class XcrTransientError extends Error {
  override readonly name = STEP_ERROR.transient;
  constructor(
    readonly code: string,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

export class XcrPermanentError extends Error {
  override readonly name = STEP_ERROR.permanent;
  constructor(
    readonly code: string,
    detail: string,
  ) {
    super(`${code}: ${detail}`);
  }
}

/**
 * A refusal: the operator asked for something the state does not allow (NOT_FAILED_OVER,
 * ORIGINAL_RUNNING, JOB_BUSY…). Permanent to the state machine; the CLI exits with "bad input"
 * (2), or "unreachable" (3) for SOURCE_UNREACHABLE.
 */
export class XcrRefusal extends XcrPermanentError {
  readonly refused = true;
}

/** The ASL error name a refusal crosses a state machine with (never retried, like a permanent error). */
export const REFUSAL_ERROR = 'XcrRefusal';

export type XcrError = XcrTransientError | XcrPermanentError;

interface CodedError {
  name: string;
  message: string;
  code?: unknown;
  params?: unknown;
}

/** The code a run result reports for a failure of a known kind. */
function reportedCode(e: CodedError): string | undefined {
  if (e.name === 'XapiError' && typeof e.code === 'string') return e.code;
  if (e.name === 'XapiTransportError') return 'TRANSPORT_ERROR';
  if (e.name === 'VhdFormatError') return typeof e.code === 'string' ? `VHD_${e.code}` : 'VHD_INVALID';
  if (e.name === 'Qcow2FormatError') return typeof e.code === 'string' ? `QCOW2_${e.code}` : 'QCOW2_INVALID';
  if (e.name.startsWith('Nbd')) return 'NBD_ERROR';
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'TIMEOUT';
  return undefined;
}

/**
 * Turns anything a step caught into a typed xcr error (ConfigError passes through): transient when
 * the policy says another attempt may succeed (the step is idempotent, so that is safe).
 */
export function classifyError(err: unknown): Error {
  if (err instanceof XcrTransientError || err instanceof XcrPermanentError) return err;
  if (!(err instanceof Error)) return new XcrPermanentError('INTERNAL_ERROR', String(err));
  const e = err as CodedError;
  if (e.name === 'ConfigError') return err;
  // An unnamed error with a socket code is a stream that broke under a transfer.
  const transient = isTransient(err);
  const code = reportedCode(e) ?? (transient ? 'TRANSPORT_ERROR' : 'INTERNAL_ERROR');
  return transient ? new XcrTransientError(code, e.message) : new XcrPermanentError(code, e.message);
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

/** A caught Step Functions failure as the error to throw again: the same code and message (a refusal stays one). */
export function failureError(failure: { Error: string; Cause?: string }): XcrPermanentError {
  const f = failureCode(failure);
  const detail = f.message.startsWith(`${f.code}: `) ? f.message.slice(f.code.length + 2) : f.message;
  return failure.Error === REFUSAL_ERROR
    ? new XcrRefusal(f.code, detail)
    : new XcrPermanentError(f.code, detail);
}
