import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../functions/config/load.js';
import {
  decodeJsonRpcResponse,
  decodeXmlRpcResponse,
  MalformedResponseError,
} from '../../../functions/xapi/marshal.js';

/**
 * Fuzzing the parsers that read what a remote host or a user hands us: malformed envelopes, wrong
 * types and huge values end in a typed error (never a crash, never a hang), and what is accepted
 * has the shape the callers rely on.
 */
const SUCCESS =
  '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>OpaqueRef:1</value></member></struct></value></param></params></methodResponse>';
const FAILURE =
  '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>HANDLE_INVALID</value><value>VM</value></data></array></value></member></struct></value></param></params></methodResponse>';

function mutate(doc: string, edits: { at: number; del: number; insert: string }[]): string {
  let out = doc;
  for (const e of edits) {
    const at = e.at % (out.length + 1);
    out = out.slice(0, at) + e.insert + out.slice(at + e.del);
  }
  return out;
}

const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 12 }), insert: fc.string({ maxLength: 12 }) });

async function outcomeOf(fn: () => unknown): Promise<unknown> {
  try {
    return await fn();
  } catch (err) {
    return err;
  }
}

function checkOutcome(out: unknown): void {
  if (out instanceof Error) {
    expect(out).toBeInstanceOf(MalformedResponseError);
    return;
  }
  const o = out as { ok: boolean; error?: unknown };
  if (o.ok) return;
  expect(Array.isArray(o.error)).toBe(true);
  expect((o.error as unknown[]).length).toBeGreaterThan(0);
  for (const p of o.error as unknown[]) expect(typeof p).toBe('string');
}

describe('XML-RPC response parser', () => {
  it('survives thousands of mutated envelopes with a typed error or a well-formed outcome', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(SUCCESS, FAILURE),
        fc.array(edit, { minLength: 1, maxLength: 4 }),
        async (doc, edits) => {
          checkOutcome(await outcomeOf(() => decodeXmlRpcResponse(mutate(doc, edits))));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses wrong types and empty failures', async () => {
    const wrongStatus = SUCCESS.replace('<value>Success</value>', '<value><int>1</int></value>');
    await expect(decodeXmlRpcResponse(wrongStatus)).rejects.toBeInstanceOf(MalformedResponseError);
    const emptyFailure = FAILURE.replace('<value>HANDLE_INVALID</value><value>VM</value>', '');
    await expect(decodeXmlRpcResponse(emptyFailure)).rejects.toBeInstanceOf(MalformedResponseError);
    await expect(decodeXmlRpcResponse('<methodResponse><fault/></methodResponse>')).rejects.toBeInstanceOf(
      MalformedResponseError,
    );
  });

  it('parses a huge value in bounded time', async () => {
    const big = 'x'.repeat(8 * 2 ** 20);
    const started = Date.now();
    const out = await decodeXmlRpcResponse(SUCCESS.replace('OpaqueRef:1', big));
    expect(out).toEqual({ ok: true, value: big });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('JSON-RPC response parser', () => {
  it('returns a typed error or a well-formed outcome for any JSON value or text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
        let out: unknown;
        try {
          out = decodeJsonRpcResponse(text);
        } catch (err) {
          out = err;
        }
        checkOutcome(out);
      }),
      { numRuns: 3000 },
    );
  });

  it('reads both error shapes and refuses the rest', () => {
    expect(decodeJsonRpcResponse('{"result":null,"error":["SESSION_INVALID","x"],"id":1}')).toEqual({
      ok: false,
      error: ['SESSION_INVALID', 'x'],
    });
    expect(
      decodeJsonRpcResponse(
        '{"jsonrpc":"2.0","error":{"code":1,"message":"VM_BAD_POWER_STATE","data":["a","halted","running"]},"id":1}',
      ),
    ).toEqual({ ok: false, error: ['VM_BAD_POWER_STATE', 'a', 'halted', 'running'] });
    expect(() => decodeJsonRpcResponse('{"error":[],"id":1}')).toThrow(MalformedResponseError);
    expect(() => decodeJsonRpcResponse('{"error":{"code":1},"id":1}')).toThrow(MalformedResponseError);
    expect(() => decodeJsonRpcResponse('[1,2]')).toThrow(MalformedResponseError);
  });
});

describe('config loader', () => {
  const anyValue = fc.jsonValue({ maxDepth: 4 });
  const nearlyValid = fc.record({
    version: fc.oneof(fc.constant(1), anyValue),
    pools: fc.oneof(
      fc.constant({
        a: { url: 'https://10.0.0.1', password: { env: 'A' }, tlsFingerprint: 'ab'.repeat(32) },
      }),
      fc.dictionary(fc.string({ maxLength: 6 }), anyValue, { maxKeys: 3 }),
    ),
    jobs: fc.array(
      fc.record(
        {
          id: fc.oneof(fc.constant('j1'), fc.string({ maxLength: 50 })),
          source: fc.oneof(fc.constant({ pool: 'a' }), anyValue),
          destination: fc.oneof(fc.constant({ pool: 'a', sr: { name: 'x' } }), anyValue),
          vms: fc.oneof(fc.constant({ tag: 't' }), anyValue),
          schedule: fc.oneof(
            fc.constant({ rate: '15 minutes' }),
            fc.record({ rate: fc.string({ maxLength: 12 }) }),
            anyValue,
          ),
          retention: fc.oneof(fc.integer({ min: -5, max: 200 }), anyValue),
          concurrency: fc.oneof(fc.integer({ min: -5, max: 80 }), anyValue),
        },
        { requiredKeys: ['id', 'source', 'destination', 'vms', 'schedule'] },
      ),
      { maxLength: 3 },
    ),
  });

  it('throws only ConfigError, each issue naming a field, and what it accepts is sound', () => {
    fc.assert(
      fc.property(fc.oneof(anyValue, nearlyValid), (input) => {
        let cfg: ReturnType<typeof parseConfig>;
        try {
          cfg = parseConfig(input);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          for (const issue of (err as ConfigError).issues) expect(issue).toMatch(/^\S.*: \S/);
          return;
        }
        expect(cfg.version).toBe(1);
        for (const job of cfg.jobs) {
          expect(cfg.pools[job.source.pool]).toBeDefined();
          expect(cfg.pools[job.destination.pool]).toBeDefined();
          expect(job.retention).toBeGreaterThanOrEqual(1);
          expect(job.concurrency).toBeGreaterThanOrEqual(1);
        }
        expect(parseConfig(JSON.parse(JSON.stringify(cfg)))).toEqual(cfg);
      }),
      { numRuns: 3000 },
    );
  });
});
