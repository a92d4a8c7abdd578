import { pipeline } from 'node:stream/promises';
import { sleep } from '../retry/index.js';
import { VhdVerifier } from '../vhd/index.js';
import { realCause, type Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';
import { RECLAIM_EVERY_BYTES, ReclaimPacer } from './reclaim.js';
import { explainNoSpace } from './space.js';
import { MeteredStream } from './throttle.js';

export interface DiskTransfer {
  source: Xapi;
  destination: Xapi;
  /** Source snapshot VDI (ref) and, for a delta, its base snapshot VDI (ref). */
  vdi: string;
  base?: string;
  /** Writable target VDI on the destination (ref) and its size. */
  target: string;
  targetSize: number;
  bytesPerSecond?: number;
  timeoutMs: number;
  onProgress?: (bytes: number, total: number) => void;
}

const ignore = () => undefined;
/** How long a failed transfer waits for the other side's verdict before aborting it. */
const CAUSE_WAIT_MS = 5_000;
/**
 * Streams one disk: the source's VHD export (a delta when `base` is set) piped through the VHD
 * verifier and a meter into the destination's VHD import. Nothing is stored in between; back-pressure
 * runs end to end. XAPI refuses chunked uploads, so the import waits for the verifier to have read
 * footer, header and BAT, which fix the exact Content-Length. Returns the bytes sent.
 */
export async function streamDisk(t: DiskTransfer): Promise<number> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`transfer exceeded ${t.timeoutMs} ms`)), t.timeoutMs);
  const verifier = new VhdVerifier();
  let total = 0;
  // the spent socket buffers are freed as the bytes flow, not when V8 notices them (reclaim.ts)
  const reclaim = new ReclaimPacer(RECLAIM_EVERY_BYTES);
  // progress only once the stream's length is known (the verifier has read footer, header and BAT)
  const meter = new MeteredStream(t.bytesPerSecond, (bytes) => {
    reclaim.onBytes(bytes);
    if (total) t.onProgress?.(bytes, total);
  });
  // Settled before an error is rethrown: the client's cleanup (cancelling and destroying the
  // transfer tasks) must finish while the step's sessions are still open.
  const inFlight: Promise<unknown>[] = [];
  try {
    const exp = await t.source.exportVdi({ vdi: t.vdi, base: t.base, format: 'vhd', signal: abort.signal });
    inFlight.push(exp.done);
    exp.done.catch(ignore); // awaited below; never an unhandled rejection meanwhile
    const relay = pipeline(exp.body, verifier, meter);
    relay.catch(ignore);
    const info = await Promise.race([verifier.info, relay.then(() => verifier.info)]);
    total = info.totalLength;
    if (info.virtualSize > t.targetSize) {
      throw new XcrPermanentError(
        'VDI_TOO_SMALL',
        `the export is ${info.virtualSize} bytes, the target VDI only ${t.targetSize}`,
      );
    }
    const imported = t.destination.importVdi({
      vdi: t.target,
      format: 'vhd',
      body: meter,
      contentLength: info.totalLength,
      signal: abort.signal,
    });
    inFlight.push(imported);
    await Promise.all([imported, relay, exp.done]);
    return meter.bytes;
  } catch (err) {
    // Let both sides report before anything is aborted: the task's verdict (a full SR, an I/O error)
    // arrives a moment after the socket error it caused, and an abort would hide it.
    const settled = Promise.allSettled(inFlight);
    const patience = new AbortController();
    await Promise.race([settled, sleep(CAUSE_WAIT_MS, patience.signal).catch(ignore)]);
    patience.abort();
    abort.abort(err);
    meter.destroy();
    verifier.destroy();
    const rejections = (await settled).flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    const cause = realCause([err, ...rejections]);
    const sr = await t.destination.getRecord('VDI', t.target).then((v) => v.SR, ignore);
    throw sr ? await explainNoSpace(t.destination, sr, total, cause) : cause;
  } finally {
    clearTimeout(timer);
  }
}
