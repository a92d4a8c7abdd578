import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { onWritten, trackWrites } from '../../../functions/xapi/written.js';

let server: Server | undefined;
let sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A loopback pair: the server side starts paused (reads nothing until resumed). */
async function pair(): Promise<{ client: Socket; peer: Socket }> {
  server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(client, 'connect');
  const [peer] = await accepted;
  peer.pause();
  sockets.push(client, peer);
  return { client, peer };
}

async function drainAll(peer: Socket, bytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  peer.on('data', (d: Buffer) => {
    parts.push(d);
    n += d.length;
  });
  peer.resume();
  while (n < bytes) await new Promise((r) => setTimeout(r, 5));
  return Buffer.concat(parts);
}

describe('onWritten / trackWrites', () => {
  it('reports a chunk only once the socket has written it, not while the peer is not reading', async () => {
    const { client, peer } = await pair();
    trackWrites(client);
    // far more than loopback socket buffers hold: most of it stays queued in the socket
    const chunk = Buffer.alloc(64 * 1024 * 1024, 7);
    let written = false;
    onWritten(chunk, () => {
      written = true;
    });
    let callbackErr: unknown = 'not called';
    client.write(chunk, (err) => {
      callbackErr = err;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(written).toBe(false);
    const got = await drainAll(peer, chunk.length);
    await new Promise((r) => setTimeout(r, 20));
    expect(written).toBe(true);
    expect(callbackErr).toBeFalsy(); // the caller's own callback still runs
    expect(got.equals(chunk)).toBe(true);
  });

  it('passes other writes through unchanged, with their encodings and callbacks', async () => {
    const { client, peer } = await pair();
    trackWrites(client);
    const calls: string[] = [];
    client.write('6869', 'hex', () => calls.push('hex'));
    client.write(Buffer.from('!'), () => calls.push('buffer'));
    client.write('ok', 'latin1');
    const got = await drainAll(peer, 5);
    await new Promise((r) => setTimeout(r, 20));
    expect(got.toString('latin1')).toBe('hi!ok');
    expect(calls).toEqual(['hex', 'buffer']);
  });

  it('does not report a chunk the socket still held queued when it was destroyed', async () => {
    const { client } = await pair();
    trackWrites(client);
    client.write(Buffer.alloc(64 * 1024 * 1024, 1)); // in the kernel's hands, partly: the next one queues
    const chunk = Buffer.alloc(1024 * 1024, 2);
    let written = false;
    onWritten(chunk, () => {
      written = true;
    });
    const failed = new Promise((r) => client.write(chunk, r));
    client.on('error', () => {});
    client.destroy();
    expect(await failed).toBeInstanceOf(Error);
    expect(written).toBe(false);
  });

  it('reports a registered chunk once, and only for that object (a copy is not it)', async () => {
    const { client, peer } = await pair();
    trackWrites(client);
    const chunk = Buffer.from('abc');
    let count = 0;
    onWritten(chunk, () => count++);
    client.write(Buffer.from(chunk));
    await drainAll(peer, 3);
    expect(count).toBe(0);
    client.write(chunk);
    client.write(chunk);
    await new Promise((r) => setTimeout(r, 50));
    expect(count).toBe(1);
  });
});
