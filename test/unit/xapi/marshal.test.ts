import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  asDouble,
  decodeJsonRpcResponse,
  decodeXmlRpcResponse,
  encodeJsonRpcCall,
  encodeXmlRpcCall,
  formatXapiDate,
  parseTaskResult,
  parseXapiDate,
} from '../../../functions/xapi/marshal.js';
import { Dbl, xmlResponse, xmlValue } from '../../support/fake-xapi.js';

// §1.2 of the reference, byte for byte (the ref made concrete).
const SUCCESS_BYTES =
  '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>OpaqueRef:0b4bd1a8-3e5b-4bd9-a32e-9b6a8e3b1c11</value></member></struct></value></param></params></methodResponse>';

/** Decodes methodCall documents with Python's xmlrpc.client: a parser nobody here wrote. */
function pythonDecode(docs: string[]): unknown[] {
  const script = [
    'import sys, json, xmlrpc.client',
    'def conv(v):',
    '    if isinstance(v, xmlrpc.client.Binary): return {"b64": __import__("base64").b64encode(v.data).decode()}',
    '    if isinstance(v, list): return [conv(x) for x in v]',
    '    if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}',
    '    if isinstance(v, float): return {"double": v}',
    '    return v',
    'out = []',
    'for d in json.load(sys.stdin):',
    '    params, method = xmlrpc.client.loads(d)',
    '    out.append({"method": method, "params": conv(list(params))})',
    'print(json.dumps(out))',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(docs), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as unknown[];
}

/** XML 1.0 cannot carry most control characters (xapi drops them); CR is normalised away. */
const xmlSafe = (s: string): boolean =>
  [...s].every((c) => {
    const n = c.codePointAt(0) ?? 0;
    return (n >= 0x20 || n === 9 || n === 10) && n !== 0xfffe && n !== 0xffff;
  });

describe('XML-RPC requests', () => {
  it('sends ints (also beyond 2^31 and 2^53) as decimal strings, floats as <double>, bools as <boolean>', () => {
    const xml = encodeXmlRpcCall('VDI.create', [
      'OpaqueRef:s',
      { virtual_size: 2 ** 41, small: 7, neg: -3, big: 2n ** 63n - 1n, f: 0.25, t: true, n: false },
      asDouble(30),
    ]);
    expect(xml).toContain('<name>virtual_size</name><value><string>2199023255552</string></value>');
    expect(xml).toContain('<name>small</name><value><string>7</string></value>');
    expect(xml).toContain('<name>neg</name><value><string>-3</string></value>');
    expect(xml).toContain('<name>big</name><value><string>9223372036854775807</string></value>');
    expect(xml).toContain('<name>f</name><value><double>0.25</double></value>');
    expect(xml).toContain('<boolean>1</boolean>');
    expect(xml).toContain('<boolean>0</boolean>');
    expect(xml).toContain('<param><value><double>30.0</double></value></param>');
    expect(xml).not.toMatch(/<int>|<i4>|<i8>/);
  });

  it('refuses values XAPI has no encoding for', () => {
    expect(() => encodeXmlRpcCall('x', [null])).toThrow(TypeError);
    expect(() => encodeXmlRpcCall('x', [{ a: Number.NaN }])).toThrow(/NaN/);
    expect(() => encodeXmlRpcCall('x', [() => 1])).toThrow(TypeError);
  });

  it('omits undefined struct members (optional record fields)', () => {
    expect(encodeXmlRpcCall('x', [{ a: 'x', b: undefined }])).not.toContain('<name>b</name>');
  });

  it('round-trips through an independent XML-RPC parser (Python xmlrpc.client)', () => {
    const leaf = fc.oneof(
      fc.string({ maxLength: 20 }).filter(xmlSafe),
      fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
      fc.boolean(),
    );
    const value = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), tie('v'), { maxKeys: 4 }),
      ),
    })).v;
    const samples = fc.sample(fc.array(value, { maxLength: 3 }), { numRuns: 150, seed: 42 });
    // What XAPI should see: ints as strings, floats as doubles.
    const expected = (v: unknown): unknown => {
      if (typeof v === 'number') return Number.isInteger(v) ? String(v) : { double: v };
      if (Array.isArray(v)) return v.map(expected);
      if (v && typeof v === 'object')
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expected(x)]));
      return v;
    };
    const buf = Buffer.from([0, 1, 2, 250]);
    const docs = [...samples.map((p) => encodeXmlRpcCall('m.x', p)), encodeXmlRpcCall('b', [buf])];
    const decoded = pythonDecode(docs) as { method: string; params: unknown[] }[];
    samples.forEach((p, i) => {
      expect(decoded[i]).toEqual({ method: 'm.x', params: expected(p) });
    });
    expect(decoded.at(-1)).toEqual({ method: 'b', params: [{ b64: buf.toString('base64') }] });
  });
});

describe('XML-RPC responses', () => {
  it("parses xapi's exact success bytes (§1.2)", async () => {
    expect(await decodeXmlRpcResponse(SUCCESS_BYTES)).toEqual({
      ok: true,
      value: 'OpaqueRef:0b4bd1a8-3e5b-4bd9-a32e-9b6a8e3b1c11',
    });
  });

  it('parses a failure envelope to its ErrorDescription', async () => {
    const bytes = xmlResponse({ error: ['MAP_DUPLICATE_KEY', 'VM', 'other_config', 'OpaqueRef:a', 'k'] });
    expect(bytes).toContain('<value>Failure</value>');
    expect(await decodeXmlRpcResponse(bytes)).toEqual({
      ok: false,
      error: ['MAP_DUPLICATE_KEY', 'VM', 'other_config', 'OpaqueRef:a', 'k'],
    });
  });

  it('keeps untyped values as strings, reads doubles, booleans, datetimes (basic format, UTC), sets and maps', async () => {
    const rec = {
      virtual_size: 4398046511104,
      progress: new Dbl(0.5),
      sharable: false,
      snapshot_time: new Date('2025-03-19T04:16:24Z'),
      VBDs: ['OpaqueRef:a', 'OpaqueRef:b'],
      other_config: { 'xcr:job': 'j1' },
      empty: '',
      emptySet: [],
    };
    const out = await decodeXmlRpcResponse(xmlResponse({ value: rec }));
    expect(out).toEqual({
      ok: true,
      value: {
        virtual_size: '4398046511104',
        progress: 0.5,
        sharable: false,
        snapshot_time: new Date('2025-03-19T04:16:24Z'),
        VBDs: ['OpaqueRef:a', 'OpaqueRef:b'],
        other_config: { 'xcr:job': 'j1' },
        empty: '',
        emptySet: [],
      },
    });
  });

  it('reads a zone-less datetime as UTC, whatever the local time zone', async () => {
    const xml = SUCCESS_BYTES.replace(
      '<value>OpaqueRef:0b4bd1a8-3e5b-4bd9-a32e-9b6a8e3b1c11</value>',
      '<value><dateTime.iso8601>20250319T04:16:24</dateTime.iso8601></value>',
    );
    expect(await decodeXmlRpcResponse(xml)).toEqual({ ok: true, value: new Date('2025-03-19T04:16:24Z') });
  });

  it('rejects what is not a XAPI envelope', async () => {
    await expect(
      decodeXmlRpcResponse('<html><body><h1>HTTP 500 internal server error</h1>'),
    ).rejects.toThrow();
    await expect(
      decodeXmlRpcResponse(
        '<?xml version="1.0"?><methodResponse><params><param><value>x</value></param></params></methodResponse>',
      ),
    ).rejects.toThrow(/not a struct/);
  });

  it('parses task.result strings (XML-RPC values even for JSON-RPC clients)', async () => {
    expect(await parseTaskResult('<value>OpaqueRef:abc</value>')).toBe('OpaqueRef:abc');
    expect(await parseTaskResult(xmlValue(['OpaqueRef:a', 'OpaqueRef:b']))).toEqual([
      'OpaqueRef:a',
      'OpaqueRef:b',
    ]);
    expect(await parseTaskResult('<value></value>')).toBe('');
    expect(await parseTaskResult('')).toBe('');
  });
});

describe('JSON-RPC', () => {
  it('encodes a v2 request with numbers as numbers', () => {
    const body = JSON.parse(
      encodeJsonRpcCall('VDI.create', ['s', { virtual_size: 2 ** 41 }, asDouble(1)], 7),
    );
    expect(body).toEqual({
      jsonrpc: '2.0',
      method: 'VDI.create',
      params: ['s', { virtual_size: 2 ** 41 }, 1],
      id: 7,
    });
  });

  it('parses v1 and v2 success and failure replies', () => {
    expect(decodeJsonRpcResponse('{"result":"OpaqueRef:x","error":null,"id":1}')).toEqual({
      ok: true,
      value: 'OpaqueRef:x',
    });
    expect(
      decodeJsonRpcResponse('{"result":null,"error":["HANDLE_INVALID","VM","OpaqueRef:x"],"id":1}'),
    ).toEqual({
      ok: false,
      error: ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'],
    });
    expect(decodeJsonRpcResponse('{"jsonrpc":"2.0","result":{"a":1},"id":1}')).toEqual({
      ok: true,
      value: { a: 1 },
    });
    expect(
      decodeJsonRpcResponse(
        '{"jsonrpc":"2.0","error":{"code":1,"message":"VDI_IN_USE","data":["OpaqueRef:v","destroy"]},"id":1}',
      ),
    ).toEqual({ ok: false, error: ['VDI_IN_USE', 'OpaqueRef:v', 'destroy'] });
    expect(() => decodeJsonRpcResponse('nope')).toThrow(/invalid JSON/);
    expect(() => decodeJsonRpcResponse('{"id":1}')).toThrow(/neither/);
  });
});

describe('datetimes', () => {
  it('formats and parses the XAPI forms', () => {
    const d = new Date('2025-03-19T04:16:24Z');
    expect(formatXapiDate(d)).toBe('20250319T04:16:24Z');
    expect(parseXapiDate('20250319T04:16:24Z')).toEqual(d);
    expect(parseXapiDate('20250319T04:16:24')).toEqual(d);
    expect(parseXapiDate('2025-03-19T04:16:24Z')).toEqual(d);
    expect(parseXapiDate('2025-03-19T06:16:24+02:00')).toEqual(d);
    expect(parseXapiDate('19700101T00:00:00Z')).toEqual(new Date(0));
    expect(parseXapiDate('not a date')).toBeUndefined();
  });
});
