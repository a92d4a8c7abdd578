import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificatePins, createDispatcher } from '../../../functions/xapi/tls.js';

// A response that ends (FIN) while the reader is not reading: undici 7 alone dies with an uncatchable
// `assert(!this.paused)` (nodejs/undici#5360) when the last bytes fill the body's buffer.
let server: Server;
let port = 0;
const body = (n: number) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
};

beforeAll(async () => {
  server = createServer((sock) => {
    sock.once('data', (d) => {
      const m = /GET \/(\d+)\/(cl|eof)/.exec(d.toString('latin1'));
      const size = Number(m?.[1] ?? 0);
      const framing = m?.[2] === 'cl' ? `Content-Length: ${size}\r\n` : '';
      sock.write(`HTTP/1.1 200 OK\r\nConnection: close\r\n${framing}\r\n`);
      sock.end(body(size));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

describe('undici paused-parser workaround', () => {
  it('delivers whole bodies that end while the reader stalls (EOF and Content-Length framing)', async () => {
    const dispatcher = createDispatcher({ pins: new CertificatePins(), connectTimeoutMs: 5_000 });
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    try {
      for (const size of [65536, 65537, 131072, 1 << 20]) {
        for (const framing of ['eof', 'cl']) {
          const res = await request(`http://127.0.0.1:${port}/${size}/${framing}`, { dispatcher });
          await new Promise((r) => setTimeout(r, 150)); // the server has sent everything and closed
          const h = createHash('sha256');
          let n = 0;
          for await (const c of res.body) {
            h.update(c as Buffer);
            n += (c as Buffer).length;
          }
          expect(n).toBe(size);
          expect(h.digest('hex')).toBe(createHash('sha256').update(body(size)).digest('hex'));
        }
      }
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await dispatcher.close();
    }
  }, 15_000); // without the workaround the body never ends
});
