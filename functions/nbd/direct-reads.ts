/**
 * Socket reads into buffers the reader chooses (node:net's `onread` option), for plain-TCP NBD
 * connections. The client points each read at the caller's buffer while a reply's data arrives, so
 * the kernel copies the bytes where they belong: with stream 'data' events every byte was copied
 * twice (kernel → a fresh 64 KiB chunk → the caller's buffer), and a profile of NbdPool put that
 * copy and the chunks' garbage collection beside the kernel's own work as its main CPU cost.
 */
export interface ReadSink {
  /** The buffer the next socket read fills (from its start). */
  buffer(): Buffer;
  /** `n` bytes arrived at the start of `buf`, the buffer the last `buffer()` call returned. */
  filled(n: number, buf: Buffer): void;
}

/**
 * Routes a socket's `onread` to the current sink (the handshake first, then the client); while no
 * sink is set, reads are kept and handed to the next one. A sink may be given a buffer that the
 * previous sink chose (the next read's buffer is picked before the sink changes).
 */
export class DirectReads {
  private sink: ReadSink | undefined;
  private held: Buffer[] = [];
  private readonly holder = new CopyingSink((chunk) => this.held.push(chunk));
  /** Pass as `onread` to net.connect. */
  readonly onread = {
    buffer: (): Buffer => (this.sink ?? this.holder).buffer(),
    callback: (n: number, buf: Uint8Array): boolean => {
      (this.sink ?? this.holder).filled(n, buf as Buffer);
      return true; // never pause: the NBD client bounds what is in flight
    },
  };

  /** Sends the reads to `sink` from now on; returns the bytes read while there was none. */
  use(sink: ReadSink | undefined): Buffer[] {
    this.sink = sink;
    return this.held.splice(0);
  }
}

/** Hands out each read as a Buffer of its own (for code written for 'data' chunks). */
export class CopyingSink implements ReadSink {
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  constructor(private readonly onChunk: (chunk: Buffer) => void) {}

  buffer(): Buffer {
    return this.scratch;
  }

  filled(n: number, buf: Buffer): void {
    this.onChunk(Buffer.from(buf.subarray(0, n)));
  }
}
