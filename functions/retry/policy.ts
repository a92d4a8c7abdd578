/**
 * What is transient: one policy, keyed by error code (never by message text), used by the XAPI
 * client's in-place retries, the cbt uploads, the NBD pool, the step error classifier and (through
 * the contract's error names) the state machine's Retry. Pure: it reads `name`, `code`, `errno`
 * and `cause` of an error, nothing else.
 */

/** The error names a step throws; the state machine retries the first and catches both. */
export const STEP_ERROR = { transient: 'XcrTransientError', permanent: 'XcrPermanentError' } as const;

/** Lambda throttling (a wide Map on a busy account): Step Functions' name, retried by the workflow. */
export const LAMBDA_THROTTLED = 'Lambda.TooManyRequestsException';

/**
 * XAPI codes after which the same call, or the whole idempotent step, may succeed: the pool is busy,
 * the session or master changed, a host is (re)starting, a task was cancelled under us. A
 * transfer that ended without its task completing (TRANSFER_INCOMPLETE, an xcr client code) too.
 */
export const TRANSIENT_XAPI_CODES: ReadonlySet<string> = new Set([
  'TOO_MANY_PENDING_TASKS',
  'VDI_IN_USE',
  'OTHER_OPERATION_IN_PROGRESS',
  'SESSION_INVALID',
  'HOST_IS_SLAVE',
  'HOST_OFFLINE',
  'HOST_STILL_BOOTING',
  'TASK_CANCELLED',
  'TRANSFER_INCOMPLETE',
  // SM's "The VDI is not available": e.g. a VDI the garbage collector has paused or is relinking
  // (activation gives up after 120 s); it comes back once the coalesce step ends.
  'SR_BACKEND_FAILURE_46',
]);

/**
 * XAPI codes that mean a device error, except from a data transfer: xapi's import/export handlers
 * report any failure of their copy loop as VDI_IO_ERROR, a connection the peer dropped included
 * (and it answers 200 before reading an upload, so the client cannot tell). From these methods, or
 * with a transient `cause` recorded by the client, they are transient; from any other call
 * (VM.snapshot, VDI.copy, …) permanent, like SR_BACKEND_FAILURE_*.
 */
export const STREAM_FAILURE_XAPI_CODES: ReadonlySet<string> = new Set(['VDI_IO_ERROR']);
export const DATA_TRANSFER_METHODS: ReadonlySet<string> = new Set(['import_raw_vdi', 'export_raw_vdi']);

/** Which transient XAPI codes the client retries in place (the step retries the others). */
export const IN_PLACE_RETRY = {
  /** Destroy-type calls: a VDI still attached by a VBD being unplugged. */
  destroy: ['VDI_IN_USE'],
  /** Async calls: the pool's task queue is full. */
  async: ['TOO_MANY_PENDING_TASKS'],
} as const;

/**
 * Socket and undici codes of a connection that broke or never came up: another attempt may reach
 * the host. `TRANSPORT` is the client's code for a network failure node did not name.
 */
export const TRANSIENT_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'TRANSPORT',
]);

/** TLS verification failures (OpenSSL's X509 codes as node names them, and the client's pin check). */
const CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  'CERT_FINGERPRINT_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'UNABLE_TO_GET_CRL',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
]);

/** A refused certificate: the same certificate is refused again, so no retry. */
export function isCertificateError(code: string): boolean {
  return CERTIFICATE_CODES.has(code);
}

/** NBD client failures worth another connection: it broke, or a reply did not come in time. */
const TRANSIENT_NBD_ERRORS: ReadonlySet<string> = new Set(['NbdConnectionError', 'NbdTimeoutError']);
/** NBD reply errnos that mean the request itself was wrong (EPERM, EINVAL): never retried. */
const PERMANENT_NBD_ERRNOS: ReadonlySet<number> = new Set([1, 22]);

/** Whether an NBD failure (by error name, and errno for a server's error reply) may succeed again. */
export function isTransientNbd(name: string, errno?: number): boolean {
  if (name === 'NbdReplyError') return errno !== undefined && !PERMANENT_NBD_ERRNOS.has(errno);
  return TRANSIENT_NBD_ERRORS.has(name);
}

interface Coded {
  name?: unknown;
  code?: unknown;
  method?: unknown;
  errno?: unknown;
  cause?: unknown;
}

/** The codes of an error and of its causes, outermost first. */
export function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err as Coded | undefined, depth = 0; e && typeof e === 'object' && depth < 8; depth++) {
    if (typeof e.code === 'string') codes.push(e.code);
    e = e.cause as Coded | undefined;
  }
  return codes;
}

/**
 * Whether another attempt of the failed operation may succeed: XAPI errors by code (a stream-failure
 * code by the method that raised it, or its cause), transport errors unless a certificate was
 * refused, VHD streams cut short, NBD connection trouble, timeouts, raw socket errors. Everything
 * else is permanent.
 */
export function isTransient(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as Coded;
  const name = typeof e.name === 'string' ? e.name : '';
  const code = typeof e.code === 'string' ? e.code : '';
  switch (name) {
    case 'XapiError':
      if (TRANSIENT_XAPI_CODES.has(code)) return true;
      if (!STREAM_FAILURE_XAPI_CODES.has(code)) return false;
      return (
        (typeof e.method === 'string' && DATA_TRANSFER_METHODS.has(e.method)) ||
        (e.cause !== undefined && isTransient(e.cause))
      );
    case 'XapiTransportError':
      return !isCertificateError(code);
    case 'VhdFormatError':
    case 'Qcow2FormatError':
      // a stream that ended early may succeed next time; a malformed image will not
      return code === 'TRUNCATED';
    case 'AbortError':
    case 'TimeoutError':
      return true;
  }
  if (name.startsWith('Nbd')) return isTransientNbd(name, typeof e.errno === 'number' ? e.errno : undefined);
  return TRANSIENT_SOCKET_CODES.has(code);
}
