/**
 * Works around undici 7's uncatchable `AssertionError: assert(!this.paused)` (nodejs/undici#5360; fixed
 * by #5474 in undici 8, which needs Node >= 22.19). When a response body applies back-pressure at the
 * moment the peer closes the connection, undici's socket 'end'/'close' handler calls `Parser.finish()`
 * on a paused parser and the process dies. XAPI exports end exactly that way (`Connection: close`, no
 * Content-Length) whenever the consumer (the import on the other pool) is slower than the export.
 *
 * The fix is the upstream one: a paused parser is resumed and fed what the socket still holds before
 * it finishes; the body keeps buffering those last bytes (back-pressure is advisory at that point).
 * It patches undici's internal Parser prototype once, reached through the first socket we hand to
 * undici; the listeners are added before undici's own, so the patch is in place when they run.
 */
import type { Socket } from 'node:net';

interface Parser {
  paused: boolean;
  ptr: number | null;
  socket: Socket;
  llhttp: { llhttp_resume(ptr: number): void };
  execute(chunk: Buffer): void;
  finish(): unknown;
}

const PATCHED = Symbol('xcr.pausedParserFinish');

function parserOf(socket: Socket): Parser | undefined {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'parser');
  const p = sym ? (socket as unknown as Record<symbol, unknown>)[sym] : undefined;
  return p && typeof p === 'object' && typeof (p as Parser).finish === 'function' ? (p as Parser) : undefined;
}

const EMPTY = Buffer.alloc(0);

function resumeAndDrain(parser: Parser): void {
  if (parser.ptr === null || parser.ptr === undefined) return;
  // As undici's own resume(): an execute, even of nothing, carries a body with a length to its end.
  let chunk = (parser.socket.read() as Buffer | null) ?? EMPTY;
  for (;;) {
    if (parser.ptr === null) return;
    parser.llhttp.llhttp_resume(parser.ptr);
    parser.paused = false;
    parser.execute(chunk);
    const next = parser.socket.read() as Buffer | null;
    if (next === null) break;
    chunk = next;
  }
  if (parser.paused && parser.ptr !== null) {
    parser.llhttp.llhttp_resume(parser.ptr);
    parser.paused = false;
  }
}

export function patchParser(parser: Parser): void {
  const proto = Object.getPrototypeOf(parser) as Parser & { [PATCHED]?: true };
  if (proto[PATCHED]) return;
  const finish = proto.finish;
  proto.finish = function (this: Parser) {
    if (this.paused) resumeAndDrain(this);
    return finish.call(this);
  };
  proto[PATCHED] = true;
}

/** Call on every socket given to undici, before undici attaches its own listeners. */
export function guardSocket(socket: Socket): void {
  const guard = () => {
    const parser = parserOf(socket);
    if (parser) patchParser(parser);
  };
  socket.once('end', guard);
  socket.once('close', guard);
}
