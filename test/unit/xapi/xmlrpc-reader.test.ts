import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
// @ts-expect-error xmlrpc ships no types for its internal modules
import deserializerModule from 'xmlrpc/lib/deserializer.js';
// @ts-expect-error xmlrpc ships no types for its internal modules
import serializerModule from 'xmlrpc/lib/serializer.js';
import { readXmlRpcResponse, XmlRpcSyntaxError } from '../../../functions/xapi/xmlrpc-reader.js';

const serializer = serializerModule as { serializeMethodResponse(v: unknown): string };
const Deserializer = deserializerModule as new () => {
  deserializeMethodResponse(stream: unknown, cb: (err: Error | null, v: unknown) => void): void;
};

/** What the xmlrpc package's SAX-based deserializer (the reader's reference) makes of a document. */
function reference(doc: string): Promise<unknown> {
  const source = {
    setEncoding() {},
    on() {},
    pipe(parser: { write(s: string): void; end(): void }) {
      parser.write(doc);
      parser.end();
    },
  };
  return new Promise((resolve, reject) =>
    new Deserializer().deserializeMethodResponse(source, (err, v) => (err ? reject(err) : resolve(v))),
  );
}

const xmlSafe = (s: string): boolean =>
  [...s].every((c) => {
    const n = c.codePointAt(0) ?? 0;
    return (n >= 0x20 || n === 9 || n === 10) && n !== 0xfffe && n !== 0xffff;
  });

const leaf = fc.oneof(
  fc.string({ unit: 'grapheme' }).filter(xmlSafe),
  fc.constantFrom('a & b', '<tag>', '"q" \'a\'', 'OpaqueRef:NULL', ''),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.boolean(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc
    .date({ min: new Date('1970-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
    .map((d) => new Date(Math.floor(d.getTime() / 1000) * 1000)),
  fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b)),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    leaf,
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string().filter(xmlSafe), tie('v'), { maxKeys: 4 }),
  ),
})).v;

describe('XML-RPC response reader', () => {
  it('reads what the xmlrpc package reads, for any value it writes', async () => {
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        const doc = serializer.serializeMethodResponse(v);
        expect(readXmlRpcResponse(doc)).toEqual(await reference(doc));
      }),
      { numRuns: 500 },
    );
  });

  it('reads the forms XAPI and others write: empty elements, untyped values, white space, CDATA, entities', async () => {
    const doc = `<?xml version="1.0"?>
<methodResponse>
  <params>
    <param>
      <value><struct>
        <member><name>a</name><value/></member>
        <member><name>b</name><value><string/></value></member>
        <member><name>c</name><value>  spaced &amp; &#60;&#x3E; </value></member>
        <member><name>d</name><value><array><data/></array></value></member>
        <member><name>e</name><value><struct/></value></member>
        <member><name>f</name><value><![CDATA[<raw>]]></value></member>
        <member><name>g</name><value><nil/></value></member>
        <member><name>h</name><value><i8>9007199254740993</i8></value></member>
        <member><name>i</name><value><dateTime.iso8601>20250319T04:16:24</dateTime.iso8601></value></member>
      </struct></value>
    </param>
  </params>
</methodResponse>
`;
    const out = readXmlRpcResponse(doc);
    expect(out).toEqual({
      a: '',
      b: '',
      c: '  spaced & <> ',
      d: [],
      e: {},
      f: '<raw>',
      g: null,
      h: '9007199254740993',
      i: new Date('2025-03-19T04:16:24Z'),
    });
  });

  it('refuses what is not a method response with one value', () => {
    for (const doc of [
      '',
      '<html><body>500</body></html>',
      '<methodResponse><fault><value><struct/></value></fault></methodResponse>',
      '<methodResponse><params><param><value><int>x</int></value></param></params></methodResponse>',
      '<methodResponse><params><param><value><boolean>2</boolean></value></param></params></methodResponse>',
      '<methodResponse><params><param><value><foo/></value></param></params></methodResponse>',
      '<methodResponse><params><param><value>x</value></param></params></methodResponse>trailing',
      '<methodResponse><params><param><value><struct><member><name>a</name>',
    ])
      expect(() => readXmlRpcResponse(doc), doc).toThrow(XmlRpcSyntaxError);
  });
});
