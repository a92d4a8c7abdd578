import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, XapiTransportError } from '../../../functions/xapi/index.js';
import { normaliseFingerprint } from '../../../functions/xapi/tls.js';
import { type FakeXapi, PASSWORD, startFake, USER } from './fake-xapi.js';

let fake: FakeXapi;
let cert: string;
let fingerprint: string;
/** Application bytes the server received on any TLS connection (after the handshake). */
let bytesIn = 0;
let connections = 0;

beforeAll(async () => {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  cert = pems.cert;
  fingerprint = new X509Certificate(cert).fingerprint256;
  fake = await startFake({ tls: { cert: pems.cert, key: pems.private } });
  fake.server.on('connection', () => {
    connections++;
  });
  fake.server.on('secureConnection', (s: TLSSocket) => {
    s.on('data', (d: Buffer) => {
      bytesIn += d.length;
    });
  });
});
afterAll(async () => {
  await fake.close();
});

const opts = { username: USER, password: PASSWORD };

describe('TLS', () => {
  it('accepts the pinned certificate (any hex spelling)', async () => {
    for (const fp of [fingerprint, fingerprint.replace(/:/g, '').toLowerCase()]) {
      const x = await Xapi.connect({ ...opts, url: fake.url, tls: { fingerprint256: fp } });
      expect(await x.call('task.create', 'a', 'b')).toMatch(/^OpaqueRef:/);
      await x.logout();
    }
  });

  it('refuses a wrong pin after the handshake, before sending a byte', async () => {
    const before = { bytesIn, connections, calls: fake.calls.length };
    const wrong = `${fingerprint.slice(0, -2)}${fingerprint.endsWith('00') ? '11' : '00'}`;
    const e = await Xapi.connect({ ...opts, url: fake.url, tls: { fingerprint256: wrong } }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(XapiTransportError);
    expect(e).toMatchObject({ name: 'XapiTransportError', code: 'CERT_FINGERPRINT_MISMATCH' });
    expect(connections).toBeGreaterThan(before.connections); // it did reach the server…
    await new Promise((r) => setTimeout(r, 50));
    expect(bytesIn).toBe(before.bytesIn); // …and sent nothing over the TLS channel
    expect(fake.calls.length).toBe(before.calls);
    expect(JSON.stringify(e)).not.toContain(PASSWORD);
  });

  it('verifies against a CA bundle', async () => {
    const x = await Xapi.connect({ ...opts, url: fake.url, tls: { ca: cert } });
    expect(await x.call('task.create', 'a', 'b')).toMatch(/^OpaqueRef:/);
    await x.logout();
  });

  it('never accepts an unverified self-signed certificate silently', async () => {
    const before = fake.calls.length;
    const e = await Xapi.connect({ ...opts, url: fake.url }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(XapiTransportError);
    expect(fake.calls.length).toBe(before);
  });

  it('refuses plain http unless allowPlainHttp', async () => {
    const plain = await startFake();
    try {
      await expect(Xapi.connect({ ...opts, url: plain.url })).rejects.toMatchObject({
        code: 'PLAIN_HTTP_REFUSED',
      });
      expect(plain.calls).toHaveLength(0);
      const x = await Xapi.connect({ ...opts, url: plain.url, allowPlainHttp: true });
      await x.logout();
      expect(plain.calls.map((c) => c.method)).toEqual(['session.login_with_password', 'session.logout']);
    } finally {
      await plain.close();
    }
  });

  it('validates fingerprints', () => {
    expect(normaliseFingerprint('ab'.repeat(32))).toBe(Array(32).fill('AB').join(':'));
    expect(() => normaliseFingerprint('abc')).toThrow(/64 hex/);
  });
});
