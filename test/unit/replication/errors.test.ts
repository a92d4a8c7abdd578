import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../functions/config/load.js';
import { classifyError, failureCode } from '../../../functions/replication/errors.js';

function xapiError(code: string) {
  return Object.assign(new Error(`${code}()`), { name: 'XapiError', code, params: [] });
}

describe('classifyError', () => {
  it('retries only transient XAPI codes', () => {
    expect(classifyError(xapiError('TOO_MANY_PENDING_TASKS')).name).toBe('XcrTransientError');
    expect(classifyError(xapiError('VDI_IO_ERROR')).name).toBe('XcrPermanentError');
    const reset = Object.assign(new Error('read ECONNRESET'), {
      name: 'XapiTransportError',
      code: 'ECONNRESET',
    });
    const cut = Object.assign(xapiError('VDI_IO_ERROR'), { cause: reset });
    expect(classifyError(cut)).toMatchObject({ name: 'XcrTransientError', code: 'VDI_IO_ERROR' });
    const imported = Object.assign(xapiError('VDI_IO_ERROR'), { method: 'import_raw_vdi' });
    expect(classifyError(imported)).toMatchObject({ name: 'XcrTransientError', code: 'VDI_IO_ERROR' });
    const permanent = classifyError(xapiError('SR_BACKEND_FAILURE_44'));
    expect(permanent.name).toBe('XcrPermanentError');
    expect(permanent.message).toMatch(/^SR_BACKEND_FAILURE_44: /);
  });

  it('treats a truncated stream as transient and corruption as permanent', () => {
    const cut = Object.assign(new Error('short block'), { name: 'VhdFormatError', code: 'TRUNCATED' });
    const bad = Object.assign(new Error('checksum'), { name: 'VhdFormatError', code: 'BAD_CHECKSUM' });
    expect(classifyError(cut).name).toBe('XcrTransientError');
    expect(classifyError(bad).name).toBe('XcrPermanentError');
    expect(classifyError(bad).message).toMatch(/^VHD_BAD_CHECKSUM: /);
    const qcut = Object.assign(new Error('ended'), { name: 'Qcow2FormatError', code: 'TRUNCATED' });
    const qbad = Object.assign(new Error('compressed'), {
      name: 'Qcow2FormatError',
      code: 'UNSUPPORTED_FEATURE',
    });
    expect(classifyError(qcut).name).toBe('XcrTransientError');
    expect(classifyError(qbad)).toMatchObject({
      name: 'XcrPermanentError',
      code: 'QCOW2_UNSUPPORTED_FEATURE',
    });
  });

  it('retries a step whose stream broke on a socket error', () => {
    const reset = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
    expect(classifyError(reset)).toMatchObject({ name: 'XcrTransientError', code: 'TRANSPORT_ERROR' });
  });

  it('keeps configuration errors as they are', () => {
    const err = new ConfigError(['jobId: unknown'], 'input');
    expect(classifyError(err)).toBe(err);
  });
});

describe('failureCode', () => {
  it('reads the code from a Lambda Cause and from a plain message', () => {
    const cause = JSON.stringify({ errorType: 'XcrPermanentError', errorMessage: 'SR_FULL: no space' });
    expect(failureCode({ Error: 'XcrPermanentError', Cause: cause })).toEqual({
      code: 'SR_FULL',
      message: 'SR_FULL: no space',
    });
    expect(failureCode({ Error: 'States.Timeout' })).toEqual({
      code: 'States.Timeout',
      message: 'States.Timeout',
    });
  });
});
