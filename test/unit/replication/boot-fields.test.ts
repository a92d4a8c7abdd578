import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CARRIED_FIELDS,
  CREATE_FIELDS,
  settableBiosStrings,
} from '../../../functions/replication/boot-fields.js';

describe('CARRIED_FIELDS', () => {
  it('is the table the README documents, row for row', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const start = readme.indexOf('**What a recovery point carries.**');
    const section = readme.slice(start, readme.indexOf('Besides the VM record', start));
    const rows = section
      .split('\n')
      .filter((l) => /^\| `[^`]+` /.test(l))
      .map((l) => l.split('|').map((c) => c.trim()))
      .map((c) => ({ field: c[1]!.replace(/`/g, ''), recoveryPoint: c[2], clone: c[3], via: c[4] }));
    expect(rows).toEqual(
      CARRIED_FIELDS.map(({ field, recoveryPoint, clone, via }) => ({ field, recoveryPoint, clone, via })),
    );
  });

  it('lists each field once; VM.create gets exactly the equal fields it can carry', () => {
    const names = CARRIED_FIELDS.map((f) => f.field);
    expect(new Set(names).size).toBe(names.length);
    expect(CREATE_FIELDS).toContain('NVRAM');
    expect(CREATE_FIELDS).toContain('generation_id');
    expect(CREATE_FIELDS).not.toContain('bios_strings');
    expect(CREATE_FIELDS).not.toContain('uuid');
  });

  it('passes set_bios_strings only settable keys with a value', () => {
    expect(
      settableBiosStrings({
        'system-manufacturer': 'Acme',
        'system-version': '',
        'oem-1': 'Xen',
        'hp-rombios': '',
      }),
    ).toEqual({ 'system-manufacturer': 'Acme' });
  });
});
