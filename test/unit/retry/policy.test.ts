import { describe, expect, it } from 'vitest';
import {
  NbdConnectionError,
  NbdProtocolError,
  NbdReplyError,
  NbdTimeoutError,
} from '../../../functions/nbd/errors.js';
import { backoffMs, errorCodes, isTransient, retrying, sleep } from '../../../functions/retry/index.js';
import { XapiError, XapiTransportError } from '../../../functions/xapi/errors.js';

const xapi = (code: string, cause?: unknown, method = 'VM.snapshot') =>
  new XapiError(code, [], method, cause === undefined ? undefined : { cause });
const transport = (code: string) => new XapiTransportError(`connect ${code}`, code);
const coded = (name: string, code: string) => Object.assign(new Error(name), { name, code });
const vhd = (code: string) => coded('VhdFormatError', code);
const named = (name: string) => Object.assign(new Error(name), { name });

const table: [string, unknown, boolean][] = [
  // XAPI: busy pool, moved master, expired session, restarting host, cancelled task.
  ['TOO_MANY_PENDING_TASKS', xapi('TOO_MANY_PENDING_TASKS'), true],
  ['VDI_IN_USE', xapi('VDI_IN_USE'), true],
  ['OTHER_OPERATION_IN_PROGRESS', xapi('OTHER_OPERATION_IN_PROGRESS'), true],
  ['SESSION_INVALID', xapi('SESSION_INVALID'), true],
  ['HOST_IS_SLAVE', xapi('HOST_IS_SLAVE'), true],
  ['HOST_OFFLINE', xapi('HOST_OFFLINE'), true],
  ['HOST_STILL_BOOTING', xapi('HOST_STILL_BOOTING'), true],
  ['TASK_CANCELLED', xapi('TASK_CANCELLED'), true],
  ['TRANSFER_INCOMPLETE (a transfer whose task never completed)', xapi('TRANSFER_INCOMPLETE'), true],
  ['SR_BACKEND_FAILURE_46 (VDI not available: paused by the GC)', xapi('SR_BACKEND_FAILURE_46'), true],
  // XAPI: the storage says no, or the request is wrong: the same again fails the same way.
  ['SR_BACKEND_FAILURE_44 (SR full)', xapi('SR_BACKEND_FAILURE_44'), false],
  ['SR_BACKEND_FAILURE_47 (SR unavailable)', xapi('SR_BACKEND_FAILURE_47'), false],
  [
    'SR_BACKEND_FAILURE_44 after the connection reset it caused',
    xapi('SR_BACKEND_FAILURE_44', transport('ECONNRESET')),
    false,
  ],
  ['VDI_IO_ERROR from VM.snapshot (a device error)', xapi('VDI_IO_ERROR'), false],
  ['VDI_IO_ERROR from VDI.copy', xapi('VDI_IO_ERROR', undefined, 'VDI.copy'), false],
  ['VDI_IO_ERROR of an import (its stream broke)', xapi('VDI_IO_ERROR', undefined, 'import_raw_vdi'), true],
  ['VDI_IO_ERROR of an export', xapi('VDI_IO_ERROR', undefined, 'export_raw_vdi'), true],
  [
    'SR_BACKEND_FAILURE_44 of an import (SR full)',
    xapi('SR_BACKEND_FAILURE_44', undefined, 'import_raw_vdi'),
    false,
  ],
  ['VDI_IO_ERROR after the stream was reset', xapi('VDI_IO_ERROR', transport('ECONNRESET')), true],
  ['VDI_IO_ERROR after an export body cut short', xapi('VDI_IO_ERROR', xapi('TRANSFER_INCOMPLETE')), true],
  ['VDI_IO_ERROR after an HTTP refusal', xapi('VDI_IO_ERROR', xapi('HTTP_STATUS')), false],
  ['HANDLE_INVALID', xapi('HANDLE_INVALID'), false],
  ['SESSION_AUTHENTICATION_FAILED', xapi('SESSION_AUTHENTICATION_FAILED'), false],
  ['TASK_TIMEOUT', xapi('TASK_TIMEOUT'), false],
  ['EXPORT_BODY_IS_HTTP_ERROR', xapi('EXPORT_BODY_IS_HTTP_ERROR'), false],
  // Transport: broken or unreachable connections yes, refused certificates no.
  ['transport ECONNREFUSED', transport('ECONNREFUSED'), true],
  ['transport UND_ERR_CONNECT_TIMEOUT', transport('UND_ERR_CONNECT_TIMEOUT'), true],
  ['transport without a code', new XapiTransportError('socket hang up'), true],
  ['transport CERT_FINGERPRINT_MISMATCH', transport('CERT_FINGERPRINT_MISMATCH'), false],
  ['transport DEPTH_ZERO_SELF_SIGNED_CERT', transport('DEPTH_ZERO_SELF_SIGNED_CERT'), false],
  ['transport ERR_TLS_CERT_ALTNAME_INVALID', transport('ERR_TLS_CERT_ALTNAME_INVALID'), false],
  // Raw socket and undici errors under a stream.
  ...['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_BODY_TIMEOUT'].map(
    (c): [string, unknown, boolean] => [`socket ${c}`, coded('Error', c), true],
  ),
  ['socket ENOENT', coded('Error', 'ENOENT'), false],
  // VHD streams: cut short yes, corrupt no.
  ['VHD TRUNCATED', vhd('TRUNCATED'), true],
  ['VHD BAD_CHECKSUM', vhd('BAD_CHECKSUM'), false],
  // NBD: connection trouble and timeouts yes; protocol violations and EINVAL/EPERM replies no.
  ['NBD connection', new NbdConnectionError('reset'), true],
  ['NBD timeout', new NbdTimeoutError('no reply'), true],
  ['NBD protocol', new NbdProtocolError('not NBD'), false],
  ['NBD reply EIO', new NbdReplyError(5, 'read'), true],
  ['NBD reply EINVAL', new NbdReplyError(22, 'read'), false],
  ['NBD reply EPERM', new NbdReplyError(1, 'read'), false],
  // Timeouts and aborts of our own signals.
  ['TimeoutError', named('TimeoutError'), true],
  ['AbortError', named('AbortError'), true],
  // Anything else.
  ['a bug', new TypeError('x is undefined'), false],
  ['a string', 'ECONNRESET', false],
  ['undefined', undefined, false],
];

describe('the transient policy', () => {
  it.each(table)('%s → transient: %s', (_what, err, transient) => {
    expect(isTransient(err)).toBe(transient);
  });

  it('NBD errors carry the policy in `retryable`', () => {
    expect(new NbdConnectionError('x').retryable).toBe(true);
    expect(new NbdReplyError(22, 'read').retryable).toBe(false);
  });

  it('reads codes along the cause chain, never from the message', () => {
    const err = xapi('VDI_IO_ERROR', transport('ECONNRESET'));
    expect(errorCodes(err)).toEqual(['VDI_IO_ERROR', 'ECONNRESET']);
    expect(
      isTransient(new XapiError('SR_BACKEND_FAILURE_44', ['ECONNRESET TOO_MANY_PENDING_TASKS'], 'm')),
    ).toBe(false);
  });
});

describe('backoff', () => {
  it('doubles from the base and stops at the cap', () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffMs(a, { baseMs: 100, maxFactor: 8 }))).toEqual([
      100, 200, 400, 800, 800,
    ]);
    expect(backoffMs(6, { baseMs: 10 })).toBe(320);
  });

  it('retries retryable failures up to the attempts, and stops at the first permanent one', async () => {
    const seen: number[] = [];
    const flaky = async (attempt: number) => {
      seen.push(attempt);
      if (attempt < 3) throw xapi('VDI_IN_USE');
      return 'ok';
    };
    expect(await retrying(flaky, { attempts: 3, baseMs: 0, retryable: isTransient })).toBe('ok');
    expect(seen).toEqual([1, 2, 3]);
    const retried: number[] = [];
    await expect(
      retrying(
        async () => {
          throw xapi('SR_BACKEND_FAILURE_44');
        },
        { attempts: 5, baseMs: 0, retryable: isTransient, onRetry: (_e, a) => retried.push(a) },
      ),
    ).rejects.toMatchObject({ code: 'SR_BACKEND_FAILURE_44' });
    expect(retried).toEqual([]);
    await expect(
      retrying(
        async () => {
          throw xapi('VDI_IN_USE');
        },
        { attempts: 2, baseMs: 0, retryable: isTransient },
      ),
    ).rejects.toMatchObject({ code: 'VDI_IN_USE' });
  });

  it('a sleep ends early with the abort reason', async () => {
    const ac = new AbortController();
    const slept = sleep(60_000, ac.signal);
    ac.abort(new Error('stopped'));
    await expect(slept).rejects.toThrow('stopped');
  });
});
