/** A disk's image format (image-format, else its snapshot_of's, else the size) and which SRs take qcow2. */
import { describe, expect, it } from 'vitest';
import {
  detectFormat,
  diskFormat,
  MAX_VHD_SIZE,
  srTakesQcow2,
} from '../../../functions/replication/image-format.js';
import type { SrRecord, VdiRecord, Xapi } from '../../../functions/xapi/index.js';

const vdi = (virtual_size: number, sm_config: Record<string, string> = {}, snapshot_of = 'OpaqueRef:NULL') =>
  ({ virtual_size, sm_config, is_a_snapshot: snapshot_of !== 'OpaqueRef:NULL', snapshot_of }) as VdiRecord;

describe('diskFormat', () => {
  it.each([
    [
      'image-format qcow2, small',
      vdi(1e9, { 'image-format': 'qcow2' }),
      undefined,
      'qcow2',
      /image-format is qcow2/,
    ],
    ['image-format vhd', vdi(1e9, { 'image-format': 'vhd' }), undefined, 'vhd', /image-format is vhd/],
    [
      'no key, the snapshot_of says qcow2',
      vdi(1e9),
      vdi(1e9, { 'image-format': 'qcow2' }),
      'qcow2',
      /snapshot of/,
    ],
    ['no key anywhere, 2040 GiB exactly', vdi(MAX_VHD_SIZE), vdi(MAX_VHD_SIZE), 'vhd', /at most 2040 GiB/],
    ['no key anywhere, one byte more', vdi(MAX_VHD_SIZE + 1), undefined, 'qcow2', /exceed VHD's 2040 GiB/],
    [
      'an unknown image-format falls to the size',
      vdi(1e9, { 'image-format': 'raw' }),
      undefined,
      'vhd',
      /at most/,
    ],
  ])('%s', (_n, v, of, format, reason) => {
    const f = diskFormat(v, of);
    expect(f.format).toBe(format);
    expect(f.reason).toMatch(reason);
  });
});

function fake(vdis: Record<string, VdiRecord>, sms: { type: string; supported_image_formats?: string[] }[]) {
  const reads: string[] = [];
  const xapi = {
    async getRecord(_cls: string, ref: string) {
      reads.push(ref);
      return vdis[ref];
    },
    async getAllRecords() {
      return new Map(sms.map((s, i) => [`sm${i}`, s]));
    },
  };
  return { xapi: xapi as unknown as Xapi, reads };
}

describe('detectFormat', () => {
  it('reads the snapshot_of record only when the snapshot does not say (SM may leave the key off)', async () => {
    const f = fake({ live: vdi(1e9, { 'image-format': 'qcow2' }) }, []);
    expect((await detectFormat(f.xapi, vdi(1e9, {}, 'live'))).format).toBe('qcow2');
    expect(f.reads).toEqual(['live']);
    expect((await detectFormat(f.xapi, vdi(1e9, { 'image-format': 'vhd' }, 'live'))).format).toBe('vhd');
    expect(f.reads).toEqual(['live']);
  });
});

describe('srTakesQcow2', () => {
  const sr = (type: string) => ({ type }) as SrRecord;
  it.each([
    ['the SM record lists qcow2', 'smb', [{ type: 'smb', supported_image_formats: ['vhd', 'qcow2'] }], true],
    [
      'the SM record lists formats without qcow2',
      'ext',
      [{ type: 'ext', supported_image_formats: ['vhd'] }],
      false,
    ],
    [
      'an empty list: the documented types (ext)',
      'ext',
      [{ type: 'ext', supported_image_formats: [] }],
      true,
    ],
    ['an older host without the field: nfs', 'nfs', [{ type: 'nfs' }], true],
    ['no SM record: lvmoiscsi', 'lvmoiscsi', [], true],
    ['smb without a list', 'smb', [{ type: 'smb', supported_image_formats: [] }], false],
    ['linstor without a list', 'linstor', [], false],
  ])('%s → %s', async (_n, type, sms, expected) => {
    expect(await srTakesQcow2(fake({}, sms).xapi, sr(type))).toBe(expected);
  });
});
