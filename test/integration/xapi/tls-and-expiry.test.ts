/**
 * An https simulator pool with a pinned certificate (RPC, 302 to a member, data paths) and a session
 * that expires while a transfer is under way.
 */
import { X509Certificate } from 'node:crypto';
import { Transform } from 'node:stream';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Xapi, XapiTransportError } from '../../../functions/xapi/index.js';
import { type SimPool, startPool } from '../../../sim/index.js';

const MiB = 1 << 20;
let pool: SimPool;
let fingerprint: string;

beforeAll(async () => {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  fingerprint = new X509Certificate(pems.cert).fingerprint256;
  pool = await startPool({
    name: 'tls',
    hosts: 2,
    tls: { cert: pems.cert, key: pems.private },
    srs: [
      { name_label: 'shared', sizeBytes: 2 ** 34, shared: true },
      { name_label: 'local1', sizeBytes: 2 ** 34, host: 1 },
    ],
    networks: [],
    vms: [
      {
        name_label: 'src',
        disks: [{ sizeBytes: 8 * MiB, sr: 'local1', data: [{ offset: 0, length: 4 * MiB, seed: 5 }] }],
      },
    ],
  });
});
afterAll(async () => {
  await pool.close();
});

async function srcDisk(x: Xapi): Promise<{ vdi: string; uuid: string; shared: string }> {
  const vdis = [...(await x.getAllRecords('VDI')).entries()];
  const [vdi, rec] = vdis.find(([, v]) => v.virtual_size === 8 * MiB)!;
  const shared = [...(await x.getAllRecords('SR')).entries()].find(([, s]) => s.name_label === 'shared')![0];
  return { vdi, uuid: rec.uuid, shared };
}

describe('https pool', () => {
  it('pins the certificate and moves data through the redirect to a member', async () => {
    expect(pool.url.startsWith('https://')).toBe(true);
    const x = await Xapi.connect({
      url: pool.url,
      username: pool.username,
      password: pool.password,
      tls: { fingerprint256: fingerprint },
    });
    try {
      const { vdi, uuid, shared } = await srcDisk(x);
      const target = await x.call<string>('VDI.create', {
        SR: shared,
        virtual_size: 8 * MiB,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      const e = await x.exportVdi({ vdi, format: 'raw' });
      await x.importVdi({ vdi: target, format: 'raw', body: e.body, contentLength: 8 * MiB });
      await e.done;
      const targetUuid = (await x.getRecord('VDI', target)).uuid;
      expect(pool.test.hashVdi(targetUuid)).toBe(pool.test.hashVdi(uuid));
      await x.destroy('VDI', target);
    } finally {
      await x.logout();
    }
  });

  it('refuses the pool under a wrong pin', async () => {
    const wrong = `${fingerprint.slice(0, -2)}${fingerprint.endsWith('00') ? '11' : '00'}`;
    const before = pool.test.calls().length;
    const e = await Xapi.connect({
      url: pool.url,
      username: pool.username,
      password: pool.password,
      tls: { fingerprint256: wrong },
    }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(XapiTransportError);
    expect(pool.test.calls().length).toBe(before);
  });

  it('keeps going when the session expires while a transfer runs', async () => {
    const x = await Xapi.connect({
      url: pool.url,
      username: pool.username,
      password: pool.password,
      tls: { fingerprint256: fingerprint },
    });
    try {
      const { vdi, uuid, shared } = await srcDisk(x);
      const target = await x.call<string>('VDI.create', {
        SR: shared,
        virtual_size: 8 * MiB,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
      pool.test.throttle(16 * MiB); // half a second of transfer
      const e = await x.exportVdi({ vdi, format: 'raw' });
      // Expire once both HTTP exchanges are under way: the handlers have authenticated, the task
      // waits that follow must log in again.
      let passed = 0;
      const meter = new Transform({
        transform(c: Buffer, _enc, cb) {
          passed += c.length;
          if (passed >= MiB && passed - c.length < MiB) pool.test.expireSessions();
          cb(null, c);
        },
      });
      e.body.pipe(meter);
      const imported = x.importVdi({ vdi: target, format: 'raw', body: meter, contentLength: 8 * MiB });
      await imported;
      expect(passed).toBe(8 * MiB);
      await e.done;
      pool.test.throttle(undefined);
      expect(pool.test.hashVdi((await x.getRecord('VDI', target)).uuid)).toBe(pool.test.hashVdi(uuid));
      await x.destroy('VDI', target);
    } finally {
      pool.test.throttle(undefined);
      await x.logout();
    }
  });
});
