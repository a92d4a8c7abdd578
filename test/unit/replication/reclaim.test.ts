import { once } from 'node:events';
import { type AddressInfo, connect, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { minorGc, ReclaimPacer } from '../../../functions/replication/reclaim.js';

const MiB = 2 ** 20;
const arrayBuffersMiB = () => process.memoryUsage().arrayBuffers / MiB;
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ReclaimPacer', () => {
  it('collects once per everyBytes of the running total, however the chunks fall', () => {
    let calls = 0;
    const pacer = new ReclaimPacer(100, () => calls++);
    for (const total of [10, 99, 100, 150, 199, 230, 420, 421]) pacer.onBytes(total);
    // 100 → next at 200; 230 → next at 330; 420 → next at 520
    expect(calls).toBe(3);
    expect(pacer.collections).toBe(3);
  });

  it('does nothing without a collector and refuses a pace that is not a positive integer', () => {
    const pacer = new ReclaimPacer(1, null);
    pacer.onBytes(10);
    expect(pacer.collections).toBe(0);
    expect(() => new ReclaimPacer(0)).toThrow(/everyBytes must be a positive integer/);
    expect(() => new ReclaimPacer(1.5)).toThrow(/everyBytes/);
  });
});

describe('minorGc', () => {
  it('frees the spent socket read buffers V8 leaves lying, without a global gc', async () => {
    const gc = minorGc();
    expect(gc).toBeTypeOf('function');
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    const chunk = Buffer.alloc(MiB, 7);
    const server = createServer((s) => {
      let sent = 0;
      const go = () => {
        while (sent < 24) {
          sent++;
          if (!s.write(chunk)) return void s.once('drain', go);
        }
        s.end();
      };
      go();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      gc!();
      await tick(20);
      const before = arrayBuffersMiB();
      const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
      let bytes = 0;
      client.on('data', (d: Buffer) => {
        bytes += d.length; // read and dropped, as a relay drops a chunk once it is written on
      });
      await once(client, 'end');
      expect(bytes).toBe(24 * MiB);
      // 24 MiB of dead read buffers: below V8's external-memory trigger, so nothing freed them yet
      expect(arrayBuffersMiB() - before).toBeGreaterThan(16);
      gc!();
      // V8's array-buffer sweeper releases them a moment after the scavenge
      const deadline = Date.now() + 2_000;
      while (arrayBuffersMiB() - before > 2 && Date.now() < deadline) await tick(5);
      expect(arrayBuffersMiB() - before).toBeLessThan(2);
      client.destroy();
    } finally {
      server.close();
    }
  });
});
