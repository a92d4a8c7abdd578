/**
 * Tells an upload body's producer when the transport is done with one of its chunks, so the memory
 * can be filled again (the cbt path reuses its 4 MiB read buffers instead of allocating one per chunk).
 *
 * A chunk handed to an HTTP upload is still referenced after the body has passed it on: undici writes
 * each chunk of a Readable body to the socket as is (`socket.write(chunk)`), and the socket keeps it,
 * queued or in a pending kernel write, until that write completes. net.Socket's documented write
 * callback is the one signal of that: the sockets of `createDispatcher` call `onWritten`'s callback
 * from it when it reports no error — the bytes were written, or the socket was destroyed and the
 * kernel write that held them has ended (Node then reports success); a chunk still queued at that
 * moment gets an error and is left to the garbage collector. A chunk that never reaches a tracked
 * socket as that same object (copied, sliced, an aborted body) is never reported, so the producer
 * must treat silence as "still in use".
 */
import type { Socket } from 'node:net';

const waiting = new WeakMap<object, () => void>();

/** `done` runs once `chunk` (this very object) has been written to a tracked socket. */
export function onWritten(chunk: Uint8Array, done: () => void): void {
  waiting.set(chunk, done);
}

type WriteCallback = (err?: Error | null) => void;

/** Routes the socket's writes of chunks registered with `onWritten` through a completion callback. */
export function trackWrites(socket: Socket): void {
  const write = socket.write;
  socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    const done = typeof chunk === 'object' && chunk !== null ? waiting.get(chunk) : undefined;
    if (!done) return (write as (...a: unknown[]) => boolean).apply(this, [chunk, ...rest]);
    waiting.delete(chunk as object);
    const [a, b] = rest;
    const cb = (typeof a === 'function' ? a : typeof b === 'function' ? b : undefined) as
      | WriteCallback
      | undefined;
    const encoding = typeof a === 'string' ? (a as BufferEncoding) : undefined;
    return write.call(this, chunk as Uint8Array, encoding as BufferEncoding, (err?: Error | null) => {
      if (!err) done();
      cb?.(err);
    });
  } as Socket['write'];
}
