/** The NBD transfer mode end to end, minus XAPI: CBT bitmap → extents → NBD reads → chunked body. */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  CBT_BLOCK_SIZE,
  decodeCbtBitmap,
  encodeChunked,
  NbdPool,
  totalLength,
} from '../../../functions/nbd/index.js';
import { type NbdServerHandle, startNbdServer } from '../../../sim/nbd/server.js';

const SIZE = 8 * 1024 * 1024;
const base = randomBytes(SIZE);
const current = Buffer.from(base);
const changedBlocks = [0, 1, 2, 17, 40, 41, 127];
for (const b of changedBlocks) randomBytes(CBT_BLOCK_SIZE).copy(current, b * CBT_BLOCK_SIZE);

let server: NbdServerHandle;
beforeAll(async () => {
  server = await startNbdServer({
    host: '127.0.0.1',
    mode: 'no-tls',
    resolveExport: (name) =>
      name === '/snap?session_id=s' ? { size: SIZE, read: (o, l) => current.subarray(o, o + l) } : undefined,
  });
});
afterAll(() => server.close());

it('replays exactly the changed blocks onto the base', async () => {
  const bits = Buffer.alloc(SIZE / CBT_BLOCK_SIZE / 8);
  for (const b of changedBlocks) bits[b >> 3]! |= 0x80 >> (b & 7);
  const extents = decodeCbtBitmap(bits.toString('base64'), { virtualSize: SIZE });
  expect(extents.length).toBe(4);
  expect(totalLength(extents)).toBe(changedBlocks.length * CBT_BLOCK_SIZE);

  const pool = await NbdPool.open(
    [{ address: '127.0.0.1', port: server.port, exportname: '/snap?session_id=s' }],
    {
      insecure: true,
      connections: 2,
    },
  );
  const body = encodeChunked(extents, (o, l) => pool.read(o, l), { maxChunkBytes: 128 * 1024 });
  const replica = Buffer.from(base);
  let pending = Buffer.alloc(0);
  let received = 0;
  // The receiving side, as vhd-tool applies it: header, data written at offset, until the zero header.
  await pipeline(
    body.stream,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        received += chunk.length;
        pending = Buffer.concat([pending, chunk]);
        for (;;) {
          if (pending.length < 12) break;
          const offset = Number(pending.readBigUInt64LE(0));
          const length = pending.readUInt32LE(8);
          if (pending.length < 12 + length) break;
          pending.copy(replica, offset, 12, 12 + length);
          pending = pending.subarray(12 + length);
        }
        done();
      },
    }),
  );
  await pool.close();
  expect(received).toBe(body.length);
  expect(replica.equals(current)).toBe(true);
});
