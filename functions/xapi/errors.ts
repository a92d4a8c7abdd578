/**
 * Typed errors of the XAPI client. Their `name`s are part of the workflow contract: Step Functions
 * retries and catches by error name, so they must never change.
 *
 * Secrets (passwords, session refs) must never reach a message, a param or a serialised error:
 * every error built here goes through `scrub`.
 */

/** Codes the client itself raises (not sent by XAPI). */
export const ClientCodes = {
  /** A task did not finish within `taskTimeoutMs`. */
  TASK_TIMEOUT: 'TASK_TIMEOUT',
  /** An RPC answered with a non-200 HTTP status (XAPI's 500 HTML page for malformed requests). */
  HTTP_STATUS: 'HTTP_STATUS',
  /** An RPC body that is not a valid XML-RPC / JSON-RPC XAPI envelope. */
  BAD_RESPONSE: 'BAD_RESPONSE',
  /** An export body started with `HTTP/` (xapi appends an error response inside a 200 body). */
  EXPORT_BODY_IS_HTTP_ERROR: 'EXPORT_BODY_IS_HTTP_ERROR',
  /** A data transfer ended but its task never completed. */
  TRANSFER_INCOMPLETE: 'TRANSFER_INCOMPLETE',
  /** Too many HOST_IS_SLAVE hops or redirects. */
  TOO_MANY_REDIRECTS: 'TOO_MANY_REDIRECTS',
} as const;

// Reference-counted: two clients may share a password; one logging out must not unmask it.
const secrets = new Map<string, number>();

/** Registers a value (password, session ref) that must be masked in every error until forgotten. */
export function registerSecret(value: string): void {
  if (value.length === 0) return;
  secrets.set(value, (secrets.get(value) ?? 0) + 1);
}

export function forgetSecret(value: string): void {
  const n = secrets.get(value);
  if (n === undefined) return;
  if (n <= 1) secrets.delete(value);
  else secrets.set(value, n - 1);
}

const SESSION_PARAM = /(session_id=)[^&\s"'<]*/gi;

/** Masks registered secrets and `session_id=` query values in a string. */
export function scrub(text: string): string {
  let out = text.replace(SESSION_PARAM, '$1***');
  for (const s of secrets.keys()) if (out.includes(s)) out = out.split(s).join('***');
  return out;
}

/** SESSION_INVALID's only param is the session ref: always masked, registered or not. */
function scrubParams(code: string, params: readonly string[]): string[] {
  if (code === 'SESSION_INVALID') return params.map(() => '***');
  return params.map(scrub);
}

export class XapiError extends Error {
  override readonly name = 'XapiError';
  readonly code: string;
  readonly params: string[];
  readonly method: string;

  constructor(code: string, params: readonly unknown[], method: string, options?: { cause?: unknown }) {
    const strParams = scrubParams(
      code,
      params.map((p) => (typeof p === 'string' ? p : (JSON.stringify(p) ?? String(p)))),
    );
    const shown = strParams.length ? ` [${strParams.join(', ')}]` : '';
    super(scrub(`${code}${shown} (${method})`), options);
    this.code = code;
    this.params = strParams;
    this.method = method;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      message: this.message,
      code: this.code,
      params: this.params,
      method: this.method,
    };
  }
}

export class XapiTransportError extends Error {
  override readonly name = 'XapiTransportError';
  /** The underlying system / undici code when known (ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT, …). */
  readonly code: string;

  constructor(message: string, code = 'TRANSPORT', options?: { cause?: unknown }) {
    super(scrub(message), options?.cause === undefined ? undefined : { cause: scrubCause(options.cause) });
    this.code = code;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, message: this.message, code: this.code };
  }
}

/** Keeps a cause for debugging, but never one whose text carries a secret. */
function scrubCause(cause: unknown): unknown {
  if (cause instanceof Error) {
    const copy = new Error(scrub(cause.message));
    copy.name = cause.name;
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') Object.assign(copy, { code });
    return copy;
  }
  return undefined;
}

export function isXapiError(e: unknown, ...codes: string[]): e is XapiError {
  return e instanceof XapiError && (codes.length === 0 || codes.includes(e.code));
}

const CLIENT_CODES = new Set<string>(Object.values(ClientCodes));
/** What XAPI reports on one end of a stream when the other end went away: a consequence. */
const STREAM_CUT_CODES = new Set(['VDI_IO_ERROR', 'TASK_CANCELLED']);

/**
 * Of the errors one failed transfer produced (the socket reset, the stream cut short, the tasks'
 * verdicts), the one that explains it: a specific error XAPI reported (a task's `error_info`, e.g.
 * `SR_BACKEND_FAILURE_44`) or an NBD server's error reply over XAPI's verdict on a cut stream
 * (`VDI_IO_ERROR`, which the other end's failure causes), over one the client inferred, over the
 * socket error. Ties keep the earliest.
 */
export function realCause(errors: readonly unknown[]): unknown {
  const rank = (e: unknown): number => {
    if (e instanceof XapiError) return CLIENT_CODES.has(e.code) ? 2 : STREAM_CUT_CODES.has(e.code) ? 3 : 4;
    if (e instanceof Error && (e.name === 'XcrPermanentError' || e.name === 'NbdReplyError')) return 4;
    return 1;
  };
  let best: unknown = errors[0];
  for (const e of errors.slice(1)) if (rank(e) > rank(best)) best = e;
  return best;
}
