import { describe, expect, it } from 'vitest';
import { decodeJsonRpcResponse, decodeXmlRpcResponse } from '../../../functions/xapi/marshal.js';
import { canonicalClass, normaliseRecord } from '../../../functions/xapi/records.js';
import { xmlResponse } from '../../support/fake-xapi.js';

const vdi = {
  uuid: 'b9b1e7c0-1111-4c3e-9d1a-000000000001',
  name_label: 'disk 0',
  SR: 'OpaqueRef:sr',
  virtual_size: 2199023255552,
  physical_utilisation: 1048576,
  type: 'user',
  sharable: false,
  read_only: false,
  is_a_snapshot: true,
  snapshot_of: 'OpaqueRef:v',
  snapshot_time: new Date('2026-01-02T03:04:05Z'),
  cbt_enabled: false,
  VBDs: [],
  sm_config: { 'vhd-parent': 'x' },
  other_config: {},
  location: 'future-field-kept',
};

describe('normaliseRecord', () => {
  it('turns XML-RPC int strings into numbers and keeps unknown fields', async () => {
    const out = await decodeXmlRpcResponse(xmlResponse({ value: vdi }));
    if (!out.ok) throw new Error('failure');
    expect((out.value as Record<string, unknown>).virtual_size).toBe('2199023255552');
    const rec = normaliseRecord('VDI', out.value);
    expect(rec.virtual_size).toBe(2199023255552);
    expect(rec.physical_utilisation).toBe(1048576);
    expect(rec.snapshot_time).toEqual(new Date('2026-01-02T03:04:05Z'));
    expect(rec.location).toBe('future-field-kept');
    expect(rec.sm_config).toEqual({ 'vhd-parent': 'x' });
  });

  it('gives the same record from JSON-RPC (ints as numbers, datetimes as strings)', async () => {
    const json = JSON.stringify({
      jsonrpc: '2.0',
      result: { ...vdi, snapshot_time: '20260102T03:04:05Z' },
      id: 1,
    });
    const out = decodeJsonRpcResponse(json);
    if (!out.ok) throw new Error('failure');
    const xml = await decodeXmlRpcResponse(xmlResponse({ value: vdi }));
    if (!xml.ok) throw new Error('failure');
    expect(normaliseRecord('VDI', out.value)).toEqual(normaliseRecord('VDI', xml.value));
  });

  it('normalises VM memory/VCPUs, VIF MTU, SR sizes and task times', () => {
    const vm = normaliseRecord('VM', {
      memory_static_max: '4294967296',
      VCPUs_max: '4',
      VCPUs_at_startup: '2',
      snapshot_time: '19700101T00:00:00Z',
    });
    expect(vm.memory_static_max).toBe(4294967296);
    expect(vm.VCPUs_max).toBe(4);
    expect(vm.snapshot_time).toEqual(new Date(0));
    expect(normaliseRecord('VIF', { MTU: '1500' }).MTU).toBe(1500);
    expect(normaliseRecord('SR', { physical_size: '10995116277760' }).physical_size).toBe(10995116277760);
    const t = normaliseRecord('task', { progress: '0.5', created: '20260102T03:04:05Z' });
    expect(t.progress).toBe(0.5);
    expect(t.created).toEqual(new Date('2026-01-02T03:04:05Z'));
  });

  it('does not mangle a value it cannot read, and refuses non-structs', () => {
    expect(normaliseRecord('VDI', { virtual_size: 'garbage' }).virtual_size).toBe('garbage');
    expect(() => normaliseRecord('VM', 'x')).toThrow(TypeError);
  });

  it('maps event class names back to API class names', () => {
    expect(canonicalClass('vdi')).toBe('VDI');
    expect(canonicalClass('task')).toBe('task');
    expect(canonicalClass('nope')).toBeUndefined();
  });
});
