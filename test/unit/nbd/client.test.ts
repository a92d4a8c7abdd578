/** Client behaviours that conforming servers never trigger, driven by scripted loopback servers. */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../functions/nbd/client.js';
import { NbdProtocolError, NbdReplyError, NbdTimeoutError } from '../../../functions/nbd/errors.js';

const SIZE = 1024 * 1024;
const content = Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 31) & 0xff));

interface Request {
  type: number;
  handle: Buffer;
  offset: number;
  length: number;
}

/** Runs `script` for each connection after reading the client flags and the EXPORT_NAME option. */
async function scripted(
  script: (socket: Socket, requests: AsyncGenerator<Request>) => Promise<void>,
  greeting?: Buffer,
): Promise<{ port: number; server: Server; received: Buffer[] }> {
  const received: Buffer[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let notify: (() => void) | undefined;
    socket.on('data', (d: Buffer) => {
      received.push(d);
      buf = Buffer.concat([buf, d]);
      notify?.();
    });
    const read = async (n: number): Promise<Buffer> => {
      while (buf.length < n) await new Promise<void>((r) => (notify = r));
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    };
    async function* requests(): AsyncGenerator<Request> {
      for (;;) {
        const r = await read(28);
        yield {
          type: r.readUInt16BE(6),
          handle: r.subarray(8, 16),
          offset: Number(r.readBigUInt64BE(16)),
          length: r.readUInt32BE(24),
        };
      }
    }
    void (async () => {
      const g = greeting ?? Buffer.concat([Buffer.from('NBDMAGICIHAVEOPT', 'latin1'), Buffer.from([0, 1])]);
      socket.write(g);
      await read(4);
      const opt = await read(16);
      await read(opt.readUInt32BE(12));
      const info = Buffer.alloc(134);
      info.writeBigUInt64BE(BigInt(SIZE), 0);
      info.writeUInt16BE(3, 8);
      socket.write(info);
      await script(socket, requests());
    })().catch(() => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  servers.push(server);
  return { port: address.port, server, received };
}

function reply(error: number, handle: Buffer, data?: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32BE(0x67446698, 0);
  h.writeUInt32BE(error, 4);
  handle.copy(h, 8);
  return data ? Buffer.concat([h, data]) : h;
}

const servers: Server[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((r) => s.close(() => r()));
    }),
  );
});

describe('NbdClient (scripted servers)', () => {
  it('matches replies that arrive out of order to their requests by handle', async () => {
    const { port } = await scripted(async (socket, requests) => {
      const batch: Request[] = [];
      for await (const r of requests) {
        batch.push(r);
        if (batch.length === 4) break;
      }
      // Answer in reverse order, one byte at a time for the first reply to exercise reassembly.
      const replies = batch
        .reverse()
        .map((r) => reply(0, r.handle, content.subarray(r.offset, r.offset + r.length)));
      const first = replies.shift()!;
      for (const byte of first) socket.write(Buffer.from([byte]));
      socket.write(Buffer.concat(replies));
    });
    const client = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'x' });
    const ranges = [
      [0, 512],
      [4096, 1024],
      [8192, 512],
      [65536, 2048],
    ] as const;
    const results = await Promise.all(ranges.map(([o, l]) => client.read(o, l)));
    results.forEach((got, i) => {
      const [o, l] = ranges[i]!;
      expect(got.equals(content.subarray(o, o + l))).toBe(true);
    });
    client.close().catch(() => {});
  });

  it('reads large replies into the caller buffer whatever the cut between headers and data', async () => {
    // Plain TCP reads go straight into the target buffer: cut the stream at awkward places (inside
    // headers, one byte after a header, across reply boundaries) with the writes paced apart.
    const { port } = await scripted(async (socket, requests) => {
      const batch: Request[] = [];
      for await (const r of requests) {
        batch.push(r);
        if (batch.length === 3) break;
      }
      const all = Buffer.concat(
        [batch[1]!, batch[2]!, batch[0]!].map((r) =>
          reply(0, r.handle, content.subarray(r.offset, r.offset + r.length)),
        ),
      );
      const first = 16 + 300_032;
      const second = first + 16 + 200_192;
      const cuts = [7, 17, 100_000, first + 7, first + 17, 370_000, second + 3, second + 16, all.length];
      socket.setNoDelay(true);
      let at = 0;
      for (const cut of cuts) {
        socket.write(all.subarray(at, cut));
        at = cut;
        await new Promise((r) => setTimeout(r, 10));
      }
    });
    const client = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'x' });
    const ranges = [
      [0, 300_032],
      [512, 300_032],
      [700_416, 200_192],
    ] as const;
    const targets = ranges.map(([, l]) => Buffer.alloc(l));
    await Promise.all(ranges.map(([o], i) => client.readInto(o, targets[i]!)));
    targets.forEach((got, i) => {
      const [o, l] = ranges[i]!;
      expect(got.equals(content.subarray(o, o + l))).toBe(true);
    });
    client.close().catch(() => {});
  });

  it('keeps the connection after an error reply, and marks EINVAL as not retryable', async () => {
    const { port } = await scripted(async (socket, requests) => {
      for await (const r of requests) {
        if (r.type === 2) return void socket.end();
        socket.write(
          r.offset === 0
            ? reply(22, r.handle)
            : reply(0, r.handle, content.subarray(r.offset, r.offset + r.length)),
        );
      }
    });
    const client = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'x' });
    const err = await client.read(0, 512).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdReplyError);
    expect((err as NbdReplyError).retryable).toBe(false);
    expect((await client.read(512, 512)).equals(content.subarray(512, 1024))).toBe(true);
    await client.close();
  });

  it('sends NBD_CMD_DISC on close after in-flight reads finish', async () => {
    const types: number[] = [];
    const { port } = await scripted(async (socket, requests) => {
      for await (const r of requests) {
        types.push(r.type);
        if (r.type === 2) return void socket.end();
        setTimeout(
          () => socket.write(reply(0, r.handle, content.subarray(r.offset, r.offset + r.length))),
          50,
        );
      }
    });
    const client = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'x' });
    const reading = client.read(0, 4096);
    const closing = client.close();
    expect((await reading).equals(content.subarray(0, 4096))).toBe(true);
    await closing;
    expect(types).toEqual([0, 2]);
  });

  it('times out a handshake that never completes', async () => {
    const server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    const started = Date.now();
    const err = await NbdClient.connect({
      host: '127.0.0.1',
      port: address.port,
      exportName: 'x',
      timeoutMs: 150,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdTimeoutError);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('fails every outstanding read when one times out, without waiting for the others', async () => {
    const { port } = await scripted(async () => {
      await new Promise(() => {}); // never answers
    });
    const client = await NbdClient.connect({
      host: '127.0.0.1',
      port,
      exportName: 'x',
      timeoutMs: 100,
      maxInFlight: 1,
    });
    const results = await Promise.allSettled([client.read(0, 512), client.read(512, 512)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(NbdTimeoutError);
    expect(client.broken).toBeDefined();
    await client.close();
  });

  it('refuses an oldstyle or non-fixed newstyle server', async () => {
    const oldstyle = Buffer.concat([
      Buffer.from('NBDMAGIC', 'latin1'),
      Buffer.from('0000420281861253', 'hex'),
    ]);
    const a = await scripted(async () => {}, Buffer.concat([oldstyle, Buffer.alloc(2)]));
    await expect(NbdClient.connect({ host: '127.0.0.1', port: a.port, exportName: 'x' })).rejects.toThrow(
      NbdProtocolError,
    );
    const b = await scripted(
      async () => {},
      Buffer.concat([Buffer.from('NBDMAGICIHAVEOPT', 'latin1'), Buffer.from([0, 0])]),
    );
    await expect(NbdClient.connect({ host: '127.0.0.1', port: b.port, exportName: 'x' })).rejects.toThrow(
      /fixed-newstyle/,
    );
  });

  it('reports a reply for a handle it never sent as a protocol error', async () => {
    const { port } = await scripted(async (socket, requests) => {
      for await (const r of requests) {
        const wrong = Buffer.from(r.handle);
        wrong.writeUInt32BE(wrong.readUInt32BE(4) + 1000, 4);
        socket.write(reply(0, wrong, Buffer.alloc(r.length)));
      }
    });
    const client = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'x' });
    await expect(client.read(0, 512)).rejects.toThrow(/unknown handle/);
    await client.close();
  });

  it('never puts the export name query (the XAPI session) into errors', async () => {
    const { port } = await scripted(async (socket) => {
      socket.destroy();
    });
    const client = await NbdClient.connect({
      host: '127.0.0.1',
      port,
      exportName: '/vdi?session_id=OpaqueRef:secret',
    });
    const err = await client.read(0, 512).catch((e: unknown) => e);
    expect(String(err)).toContain('/vdi');
    expect(String(err)).not.toContain('secret');
    await client.close();
  });
});
