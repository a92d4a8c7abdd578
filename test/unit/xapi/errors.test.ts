import { describe, expect, it } from 'vitest';
import { NbdReplyError } from '../../../functions/nbd/errors.js';
import {
  ClientCodes,
  forgetSecret,
  realCause,
  registerSecret,
  scrub,
  XapiError,
  XapiTransportError,
} from '../../../functions/xapi/errors.js';

const SESSION = 'OpaqueRef:5e55i0n-0000-4000-8000-000000000001';
const PASSWORD = 'hunter2-Pa55';

const everything = (e: Error) =>
  `${e.message}|${String(e)}|${JSON.stringify(e)}|${e.stack}|${JSON.stringify(e.cause ?? '')}`;

describe('secret scrubbing', () => {
  it('masks session_id query values even when not registered', () => {
    expect(scrub(`GET http://h/export_raw_vdi?session_id=${SESSION}&vdi=x`)).toBe(
      'GET http://h/export_raw_vdi?session_id=***&vdi=x',
    );
  });

  it('masks registered secrets in XapiError messages, params and JSON', () => {
    registerSecret(SESSION);
    registerSecret(PASSWORD);
    try {
      const e = new XapiError('SESSION_AUTHENTICATION_FAILED', ['root', `bad password ${PASSWORD}`], 'login');
      const s = new XapiError('SESSION_INVALID', [SESSION], 'VM.get_all');
      const other = new XapiError('INTERNAL_ERROR', [`call failed for ${SESSION}`], 'VM.get_all');
      for (const err of [e, s, other]) {
        expect(everything(err)).not.toContain(SESSION);
        expect(everything(err)).not.toContain(PASSWORD);
      }
      expect(s.params).toEqual(['***']);
      expect(e.params[0]).toBe('root');
    } finally {
      forgetSecret(SESSION);
      forgetSecret(PASSWORD);
    }
  });

  it('always masks the SESSION_INVALID param, registered or not', () => {
    const e = new XapiError('SESSION_INVALID', ['OpaqueRef:unregistered'], 'm');
    expect(everything(e)).not.toContain('OpaqueRef:unregistered');
  });

  it('masks transport errors and their causes', () => {
    registerSecret(PASSWORD);
    try {
      const cause = Object.assign(
        new Error(`socket hang up http://h/import_raw_vdi?session_id=${SESSION} ${PASSWORD}`),
        {
          code: 'ECONNRESET',
        },
      );
      const e = new XapiTransportError(`PUT ?session_id=${SESSION}: ${PASSWORD}`, 'ECONNRESET', { cause });
      expect(e.name).toBe('XapiTransportError');
      expect(everything(e)).not.toContain(SESSION);
      expect(everything(e)).not.toContain(PASSWORD);
      expect((e.cause as { code?: string }).code).toBe('ECONNRESET');
    } finally {
      forgetSecret(PASSWORD);
    }
  });

  it('keeps a secret masked while another holder still uses it', () => {
    registerSecret(PASSWORD);
    registerSecret(PASSWORD);
    forgetSecret(PASSWORD);
    expect(scrub(PASSWORD)).toBe('***');
    forgetSecret(PASSWORD);
    expect(scrub(PASSWORD)).toBe(PASSWORD);
  });

  it('has stable names for Step Functions', () => {
    expect(new XapiError('X', [], 'm').name).toBe('XapiError');
    expect(new XapiTransportError('x').name).toBe('XapiTransportError');
    expect(new XapiError('VDI_IN_USE', ['OpaqueRef:v', 'destroy'], 'VDI.destroy').message).toBe(
      'VDI_IN_USE [OpaqueRef:v, destroy] (VDI.destroy)',
    );
  });
});

describe('realCause', () => {
  const reset = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
  const full = new XapiError(
    'SR_BACKEND_FAILURE_44',
    ['', 'There is insufficient space', ''],
    'import_raw_vdi',
  );
  const cut = new XapiError('VDI_IO_ERROR', ['Device I/O errors'], 'export_raw_vdi');
  const inferred = new XapiError(ClientCodes.TRANSFER_INCOMPLETE, ['x'], 'import_raw_vdi');
  const nbdRead = new NbdReplyError(5, 'read');
  it.each([
    ['cbt: the NBD server’s read error over the cut import it caused', [cut, nbdRead], nbdRead],
    ['cbt: the import task’s error and an NBD reply error: the earliest', [full, nbdRead], full],
    ['cbt: an NBD reply error over the socket reset', [reset, nbdRead], nbdRead],
    ['the import task’s error over the socket reset it caused', [reset, full], full],
    ['a specific XAPI error over the other end’s cut-stream verdict', [reset, cut, full], full],
    ['the cut-stream verdict over an inferred client error', [inferred, cut], cut],
    ['an inferred client error over a socket error', [reset, inferred], inferred],
    ['the earliest of equals', [cut, new XapiError('VDI_IO_ERROR', [], 'import_raw_vdi')], cut],
    ['the only error', [reset], reset],
  ])('%s', (_name, errors, expected) => {
    expect(realCause(errors)).toBe(expected);
  });
});
