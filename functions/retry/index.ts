export { abortReason, type Backoff, backoffMs, type RetryOptions, retrying, sleep } from './backoff.js';
export {
  DATA_TRANSFER_METHODS,
  errorCodes,
  IN_PLACE_RETRY,
  isCertificateError,
  isTransient,
  isTransientNbd,
  LAMBDA_THROTTLED,
  STEP_ERROR,
  STREAM_FAILURE_XAPI_CODES,
  TRANSIENT_SOCKET_CODES,
  TRANSIENT_XAPI_CODES,
} from './policy.js';
