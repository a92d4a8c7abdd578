import { describe, expect, it } from 'vitest';
import {
  formatDateTime,
  formatDouble,
  jsonValue,
  parseDateTime,
  toXmlString,
  XFloat,
  XInt32,
  xmlResponse,
} from '../../../sim/wire/values.js';

// Expected bytes are what XAPI's serialiser writes (ocaml-rpc xmlrpc.ml add_value/add_response).
describe('XML-RPC encoding (byte for byte)', () => {
  it('success response: Status first, untyped string, no whitespace', () => {
    expect(xmlResponse(true, 'OpaqueRef:abc')).toBe(
      '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name>' +
        '<value>Success</value></member><member><name>Value</name><value>OpaqueRef:abc</value></member>' +
        '</struct></value></param></params></methodResponse>',
    );
  });

  it('failure response: ErrorDescription as an array of untyped strings', () => {
    expect(xmlResponse(false, ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'])).toBe(
      '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name>' +
        '<value>Failure</value></member><member><name>ErrorDescription</name><value><array><data>' +
        '<value>HANDLE_INVALID</value><value>VM</value><value>OpaqueRef:x</value></data></array></value>' +
        '</member></struct></value></param></params></methodResponse>',
    );
  });

  it('ints are untyped decimal strings, bools <boolean>, floats <double> %.16g, <i4> where XAPI uses it', () => {
    expect(toXmlString(8589934592)).toBe('<value>8589934592</value>');
    expect(toXmlString(true)).toBe('<value><boolean>1</boolean></value>');
    expect(toXmlString(false)).toBe('<value><boolean>0</boolean></value>');
    expect(toXmlString(new XFloat(1))).toBe('<value><double>1</double></value>');
    expect(toXmlString(new XFloat(0.5))).toBe('<value><double>0.5</double></value>');
    expect(toXmlString(new XInt32(3))).toBe('<value><i4>3</i4></value>');
  });

  it('datetimes are basic-format UTC', () => {
    const d = new Date(Date.UTC(2025, 2, 19, 4, 16, 24));
    expect(toXmlString(d)).toBe('<value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value>');
    expect(formatDateTime(new Date(0))).toBe('19700101T00:00:00Z');
    expect(parseDateTime('20250319T04:16:24Z')?.getTime()).toBe(d.getTime());
    expect(parseDateTime('2025-03-19T04:16:24Z')?.getTime()).toBe(d.getTime());
    expect(parseDateTime('20250319T04:16:24')?.getTime()).toBe(d.getTime());
  });

  it('sets, maps, empty containers and escaping', () => {
    expect(toXmlString([])).toBe('<value><array><data></data></array></value>');
    expect(toXmlString({})).toBe('<value><struct></struct></value>');
    expect(toXmlString({ k: ['a'] })).toBe(
      '<value><struct><member><name>k</name><value><array><data><value>a</value></data></array></value></member></struct></value>',
    );
    expect(toXmlString('a&b<c>"d"\u0001e\tf')).toBe('<value>a&amp;b&lt;c&gt;&quot;d&quot;e\tf</value>');
    expect(toXmlString('')).toBe('<value></value>');
  });

  it('%.16g formatting', () => {
    expect(formatDouble(0.1)).toBe('0.1');
    expect(formatDouble(1 / 3)).toBe('0.3333333333333333');
    expect(formatDouble(1234567890123)).toBe('1234567890123');
    expect(formatDouble(1e20)).toBe('1e+20');
    expect(formatDouble(0.00001)).toBe('1e-05');
    expect(formatDouble(0)).toBe('0');
  });

  it('JSON form: ints as numbers, datetimes as the same string', () => {
    expect(jsonValue({ n: 5, f: new XFloat(0.25), d: new Date(0), b: true, s: ['x'] })).toEqual({
      n: 5,
      f: 0.25,
      d: '19700101T00:00:00Z',
      b: true,
      s: ['x'],
    });
  });
});
