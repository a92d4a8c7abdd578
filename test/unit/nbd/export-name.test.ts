import { describe, expect, it } from 'vitest';
import { parseXapiExportName } from '../../../sim/nbd/export-name.js';

describe('parseXapiExportName', () => {
  it('splits the VDI uuid and the session ref', () => {
    expect(parseXapiExportName('/0b5d9b8e-3f1a-4c57-9d0e-2a7f5c1e9b10?session_id=OpaqueRef:1f2e-33')).toEqual(
      {
        vdiUuid: '0b5d9b8e-3f1a-4c57-9d0e-2a7f5c1e9b10',
        sessionId: 'OpaqueRef:1f2e-33',
      },
    );
  });

  it('refuses names without a uuid or a session', () => {
    expect(parseXapiExportName('/0b5d9b8e-3f1a-4c57-9d0e-2a7f5c1e9b10')).toBeUndefined();
    expect(parseXapiExportName('/?session_id=OpaqueRef:x')).toBeUndefined();
    expect(parseXapiExportName('')).toBeUndefined();
  });
});
