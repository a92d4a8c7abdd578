import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeChunked } from '../../../functions/nbd/index.js';
import { ReadBuffers, reusingReader } from '../../../functions/replication/read-buffers.js';
import { CertificatePins, createDispatcher } from '../../../functions/xapi/tls.js';

const MiB = 1024 * 1024;

describe('ReadBuffers', () => {
  it('hands out a released buffer again, never one still taken', () => {
    const b = new ReadBuffers(1024, 2);
    const x = b.take(1024);
    const y = b.take(512);
    expect(y.view.buffer).not.toBe(x.view.buffer);
    expect(y.view.length).toBe(512);
    x.release();
    const z = b.take(100);
    expect(z.view.buffer).toBe(x.view.buffer);
    expect(z.view).not.toBe(x.view); // a new object: the transport knows a chunk by identity
    expect([b.made, b.reused]).toEqual([2, 1]);
  });

  it('keeps at most `keep` released buffers and ignores a second release', () => {
    const b = new ReadBuffers(64, 1);
    const taken = [b.take(64), b.take(64), b.take(64)];
    for (const t of taken) t.release();
    taken[0]!.release();
    b.take(64);
    b.take(64);
    expect([b.made, b.reused]).toEqual([4, 1]);
  });

  it('refuses a length above the buffer size', () => {
    expect(() => new ReadBuffers(64, 1).take(65)).toThrow(RangeError);
  });
});

// A chunked upload through the product's dispatcher to a receiver slower than the sender: the socket
// holds each 4 MiB chunk for a while after undici passed it on. Every chunk's data is a pattern of its
// disk offset, so data read into a buffer the socket was still sending from shows up at the receiver.
const CHUNK = 4 * MiB;
const CHUNKS = 24;
/** Each 32-bit word holds its disk offset / 4. */
const fillFor = (offset: number, target: Buffer) => {
  const words = new Uint32Array(target.buffer, target.byteOffset, target.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = offset / 4 + i;
};

let server: Server;
let url = '';
beforeAll(async () => {
  server = createServer((req, res) => {
    let parts: Buffer[] = [];
    let have = 0;
    let bad = 0;
    let chunks = 0;
    const take = (n: number) => {
      const all = Buffer.concat(parts);
      parts = [all.subarray(n)];
      have -= n;
      return all.subarray(0, n);
    };
    let header: { offset: number; length: number } | undefined;
    req.on('data', (d: Buffer) => {
      parts.push(d);
      have += d.length;
      for (;;) {
        if (!header) {
          if (have < 12) break;
          const h = take(12);
          header = { offset: Number(h.readBigUInt64LE(0)), length: h.readUInt32LE(8) };
          if (header.length === 0) break;
        }
        if (have < header.length) break;
        const want = Buffer.alloc(header.length);
        fillFor(header.offset, want);
        if (!want.equals(take(header.length))) bad++;
        chunks++;
        header = undefined;
      }
      req.pause(); // slower than the sender
      setTimeout(() => req.resume(), 1);
    });
    req.on('end', () => res.end(JSON.stringify({ bad, chunks })));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function upload(read: (offset: number, length: number) => Promise<Buffer>) {
  const dispatcher = createDispatcher({ pins: new CertificatePins(), connectTimeoutMs: 5_000 });
  try {
    const body = encodeChunked([{ offset: 0, length: CHUNKS * CHUNK }], read, { readAhead: 4 });
    const res = await request(url, {
      method: 'PUT',
      dispatcher,
      headers: { 'content-length': String(body.length) },
      body: body.stream,
    });
    return (await res.body.json()) as { bad: number; chunks: number };
  } finally {
    await dispatcher.close();
  }
}

const fill = async (offset: number, target: Buffer) => fillFor(offset, target);

describe('reusingReader through the dispatcher', () => {
  it('reuses buffers only once the socket has written them: the receiver gets every chunk intact', async () => {
    const buffers = new ReadBuffers(CHUNK, 8);
    const got = await upload(reusingReader(buffers, fill));
    expect(got).toEqual({ bad: 0, chunks: CHUNKS });
    // the buffers in flight at once (4 reads ahead, the one handed on, the socket's) are all there is
    expect(buffers.made).toBeLessThanOrEqual(8);
    expect(buffers.reused).toBe(CHUNKS - buffers.made);
  });

  it('the check catches a buffer reused before it was sent (released as soon as it was read)', async () => {
    const buffers = new ReadBuffers(CHUNK, 8);
    const early = async (offset: number, length: number) => {
      const { view, release } = buffers.take(length);
      await fill(offset, view);
      release();
      return view;
    };
    const got = await upload(early);
    expect(got.chunks).toBe(CHUNKS);
    expect(got.bad).toBeGreaterThan(0);
  });
});
