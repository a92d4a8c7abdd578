import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, XapiTransportError } from '../../../functions/xapi/index.js';
import { normaliseFingerprint } from '../../../functions/xapi/tls.js';
import { type FakeXapi, Fault, PASSWORD, startFake, USER } from '../../support/fake-xapi.js';

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

  it("learns pool members' certificates over the pinned session, for data-path redirects", async () => {
    const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const member = await startFake({ tls: { cert: pems.cert, key: pems.private } });
    member.sessions = fake.sessions;
    member.tasks = fake.tasks;
    const served: string[] = [];
    member.routes.push((_req, res, url) => {
      if (url.pathname !== '/export_raw_vdi') return false;
      served.push(url.pathname);
      res.writeHead(200, { connection: 'close' }).end('data');
      fake.finishTask(url.searchParams.get('task_id') ?? '', { result: '' });
      return true;
    });
    fake.routes.push((req, res, url) => {
      if (url.pathname !== '/export_raw_vdi') return false;
      res.writeHead(302, { location: `https://${member.address}${req.url}` }).end();
      return true;
    });
    fake.methods.set('host.get_all', () => ['OpaqueRef:h1', 'OpaqueRef:h2']);
    const certs: Record<string, string> = { 'OpaqueRef:h1': cert, 'OpaqueRef:h2': pems.cert };
    try {
      fake.methods.set('host.get_server_certificate', (p) => certs[String(p[0])]);
      const x = await Xapi.connect({ ...opts, url: fake.url, tls: { fingerprint256: fingerprint } });
      const e = await x.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' });
      const chunks: Buffer[] = [];
      for await (const c of e.body) chunks.push(c as Buffer);
      await e.done;
      expect(Buffer.concat(chunks).toString()).toBe('data');
      expect(served).toHaveLength(1);
      await x.logout();

      // Without the member's certificate the redirect target is refused, not trusted.
      fake.methods.set('host.get_server_certificate', () => {
        throw new Fault(['RBAC_PERMISSION_DENIED', 'host.get_server_certificate', 'no']);
      });
      const y = await Xapi.connect({ ...opts, url: fake.url, tls: { fingerprint256: fingerprint } });
      await expect(y.exportVdi({ vdi: 'OpaqueRef:v', format: 'raw' })).rejects.toMatchObject({
        code: 'CERT_FINGERPRINT_MISMATCH',
      });
      expect(served).toHaveLength(1);
      await y.logout();
    } finally {
      fake.routes.length = 0;
      await member.close();
    }
  });

  it('validates fingerprints', () => {
    expect(normaliseFingerprint('ab'.repeat(32))).toBe(Array(32).fill('AB').join(':'));
    expect(() => normaliseFingerprint('abc')).toThrow(/64 hex/);
  });
});
