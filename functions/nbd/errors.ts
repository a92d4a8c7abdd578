import { isTransientNbd } from '../retry/index.js';
import { errnoName } from './protocol.js';

/**
 * Base class of every NBD client failure; `retryable` says whether a new attempt may succeed, as
 * the transient policy (functions/retry) decides by error name and errno.
 */
export class NbdError extends Error {
  override name = 'NbdError';
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.retryable = retryable;
  }
}

/** The server broke the protocol, refused the handshake or the export: a retry will not help. */
export class NbdProtocolError extends NbdError {
  override name = 'NbdProtocolError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, isTransientNbd('NbdProtocolError'), options);
  }
}

/** The connection failed (refused, reset, closed, TLS failure while connected). */
export class NbdConnectionError extends NbdError {
  override name = 'NbdConnectionError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, isTransientNbd('NbdConnectionError'), options);
  }
}

/** A request got no reply within its timeout; the connection it was on is abandoned. */
export class NbdTimeoutError extends NbdError {
  override name = 'NbdTimeoutError';
  constructor(message: string) {
    super(message, isTransientNbd('NbdTimeoutError'));
  }
}

/** The server answered a request with an errno. EINVAL/EPERM mean a bad request: not retried. */
export class NbdReplyError extends NbdError {
  override name = 'NbdReplyError';
  readonly errno: number;
  constructor(errno: number, what: string) {
    super(`${what} failed: ${errnoName(errno)}`, isTransientNbd('NbdReplyError', errno));
    this.errno = errno;
  }
}
