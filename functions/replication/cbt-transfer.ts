import type { JobConfig } from '../config/schema.js';
import {
  batchExtents,
  decodeCbtBitmap,
  type Extent,
  encodeChunked,
  type NbdExportInfo,
  NbdPool,
  totalLength,
} from '../nbd/index.js';
import { readQcow2Stream } from '../qcow2/index.js';
import { isTransient, retrying } from '../retry/index.js';
import { readVhdStream } from '../vhd/index.js';
import { realCause, type Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';
import { ReadBuffers, reusingReader } from './read-buffers.js';
import { explainNoSpace } from './space.js';

/**
 * The cbt transfer mode of one disk: the changed 64 KiB extents (VDI.list_changed_blocks) of a delta,
 * or the allocated 2 MiB blocks (the BAT of a VHD export) of a full, read over NBD from the source
 * snapshot and written into the target with `import_raw_vdi?format=raw&chunked`. One call sends at
 * most `budgetBytes` of data in uploads of at most `uploadBytes`, and returns a cursor (a disk byte
 * offset: every extent below it is written) from which the next call resumes. Uploads are idempotent
 * writes, so a failed one is simply sent again.
 */
export interface CbtDiskTransfer {
  source: Xapi;
  destination: Xapi;
  /** Source snapshot VDI (ref) and, for a delta, its base snapshot VDI (ref, may be cbt_metadata). */
  vdi: string;
  base?: string;
  /** Writable target VDI (ref). */
  target: string;
  virtualSize: number;
  /** How a full finds the allocated ranges: the BAT of a VHD export, or the L1/L2 tables of a qcow2 export. */
  imageFormat?: 'vhd' | 'qcow2';
  cursor: number;
  budgetBytes: number;
  /** Stop starting new uploads after this long. */
  budgetMs: number;
  /** Largest single chunked upload (default: budgetBytes, capped at 256 MiB). */
  uploadBytes?: number;
  /** Per upload. */
  timeoutMs: number;
  /** Attempts per upload inside one call (first included). Default 3. */
  attempts?: number;
  connections?: number;
  /** Bytes sent so far, and those plus the changed bytes still to send (the disk's total as known now). */
  onProgress?: (bytes: number, total: number) => void;
  onRetry?: (err: Error, attempt: number) => void;
}

export interface CbtStepResult {
  cursor: number;
  done: boolean;
  /** Bytes on the wire (chunk headers included) this call. */
  bytes: number;
  /** Data bytes written this call. */
  dataBytes: number;
  /** Uploads finished this call. */
  uploads: number;
  /** Data bytes still to send after this call. */
  remaining: number;
  /** The error that stopped the call early after some progress (the next call retries from the cursor). */
  interrupted?: Error;
}

const MAX_UPLOAD = 256 * 1024 * 1024;
/** Data bytes per chunk of the chunked body, and the NBD reads started ahead of the upload. */
const CHUNK_BYTES = 4 * 1024 * 1024;
const READ_AHEAD = 4;
/**
 * Read buffers kept for reuse: the reads ahead, the chunk being handed on, one in the body's queue
 * and one or two the socket is writing; past that a chunk gets a fresh buffer (ReadBuffers).
 */
const KEEP_BUFFERS = READ_AHEAD + 4;
const MiB = 2 ** 20;
/** An invocation stops starting uploads after this long (Lambda allows 15 minutes in all). */
const CBT_TIME_BUDGET_MS = 10 * 60 * 1000;

/** One invocation's share of a cbt disk: at most cbtChunkMiB of data and 10 minutes of uploads. */
export function cbtBudget(job: Pick<JobConfig, 'cbtChunkMiB' | 'transferTimeoutSec'>) {
  const timeoutMs = job.transferTimeoutSec * 1000;
  return {
    budgetBytes: job.cbtChunkMiB * MiB,
    budgetMs: Math.min(CBT_TIME_BUDGET_MS, timeoutMs / 2),
    timeoutMs,
  };
}
const UNALLOCATED = 0xffffffff;

/** The pool's NBD security from its networks' purposes (xapi-nbd: `nbd` → TLS forced, `insecure_nbd` → plain). */
export async function nbdSecurity(xapi: Xapi): Promise<'tls' | 'insecure' | undefined> {
  const purposes = new Set<string>();
  for (const n of (await xapi.getAllRecords('network')).values())
    for (const p of n.purpose ?? []) purposes.add(p);
  const tls = purposes.has('nbd');
  const plain = purposes.has('insecure_nbd');
  if (tls === plain) return undefined; // xapi-nbd refuses connections when both or neither are set
  return tls ? 'tls' : 'insecure';
}

export async function nbdRecords(xapi: Xapi, vdi: string): Promise<NbdExportInfo[]> {
  const records = await xapi.call<Record<string, unknown>[]>('VDI.get_nbd_info', vdi);
  return records.map((r) => ({
    address: String(r.address),
    port: Number(r.port),
    exportname: String(r.exportname),
    ...(r.cert ? { cert: String(r.cert) } : {}),
    ...(r.subject ? { subject: String(r.subject) } : {}),
  }));
}

/** Opens NBD connections to a source snapshot VDI (TLS with the record's certificate unless the pool is insecure_nbd). */
export async function openNbd(
  xapi: Xapi,
  vdi: string,
  connections: number,
  timeoutMs = 30_000,
): Promise<NbdPool> {
  const security = await nbdSecurity(xapi);
  if (!security)
    throw new XcrPermanentError(
      'NBD_UNAVAILABLE',
      'no network of the pool serving the disk has an NBD purpose (nbd or insecure_nbd)',
    );
  const records = await nbdRecords(xapi, vdi);
  if (records.length === 0)
    throw new XcrPermanentError('NBD_UNAVAILABLE', 'VDI.get_nbd_info returned no record');
  return NbdPool.open(records, { connections, insecure: security === 'insecure', timeoutMs });
}

/** Changed 64 KiB extents between the base and the new snapshot. */
export async function changedExtents(
  xapi: Xapi,
  base: string,
  vdi: string,
  virtualSize: number,
): Promise<Extent[]> {
  const bitmap = await xapi.call<string>('VDI.list_changed_blocks', base, vdi);
  return decodeCbtBitmap(bitmap, { virtualSize });
}

/**
 * The allocated ranges of a VDI from the tables at the head of its export, whose data is then not
 * read: the BAT of a VHD export (2 MiB blocks), or the L1/L2 tables of a qcow2 export (64 KiB
 * clusters; clusters flagged as zeros are written too, so the target reads zeros there).
 */
export async function allocatedExtents(
  xapi: Xapi,
  vdi: string,
  virtualSize: number,
  format: 'vhd' | 'qcow2' = 'vhd',
): Promise<Extent[]> {
  const abort = new AbortController();
  const exp = await xapi.exportVdi({ vdi, format, signal: abort.signal });
  try {
    const out: Extent[] = [];
    const add = (offset: number, length: number) => {
      if (offset >= virtualSize) return;
      length = Math.min(length, virtualSize - offset);
      const last = out[out.length - 1];
      if (last && last.offset + last.length === offset) last.length += length;
      else out.push({ offset, length });
    };
    if (format === 'qcow2') {
      const image = await readQcow2Stream(exp.body);
      for (const e of image.extents) add(e.offset, e.length);
      await image.close();
      return out;
    }
    const { info } = await readVhdStream(exp.body);
    for (let i = 0; i < info.bat.length; i++)
      if (info.bat[i] !== UNALLOCATED) add(i * info.blockSize, info.blockSize);
    return out;
  } finally {
    abort.abort(new Error('block list read; the data travels over NBD'));
    exp.body.destroy();
    await exp.done.catch(() => undefined);
  }
}

/** The extents at or after `cursor` (an extent straddling it is cut). */
export function fromCursor(extents: readonly Extent[], cursor: number): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    const end = e.offset + e.length;
    if (end <= cursor) continue;
    const offset = Math.max(e.offset, cursor);
    out.push({ offset, length: end - offset });
  }
  return out;
}

export async function transferCbtChunk(t: CbtDiskTransfer): Promise<CbtStepResult> {
  const started = Date.now();
  const all = t.base
    ? await changedExtents(t.source, t.base, t.vdi, t.virtualSize)
    : await allocatedExtents(t.source, t.vdi, t.virtualSize, t.imageFormat);
  const pending = fromCursor(all, t.cursor);
  const result: CbtStepResult = {
    cursor: t.cursor,
    done: false,
    bytes: 0,
    dataBytes: 0,
    uploads: 0,
    remaining: totalLength(pending),
  };
  if (pending.length === 0) return { ...result, cursor: t.virtualSize, done: true };
  const budget = batchExtents(pending, t.budgetBytes)[0]!;
  const uploads = batchExtents(budget, Math.min(t.uploadBytes ?? t.budgetBytes, MAX_UPLOAD, t.budgetBytes));
  const nbd = await openNbd(t.source, t.vdi, t.connections ?? 4);
  const buffers = new ReadBuffers(CHUNK_BYTES, KEEP_BUFFERS);
  try {
    for (const upload of uploads) {
      if (result.uploads > 0 && Date.now() - started > t.budgetMs) break;
      try {
        result.bytes += await sendWithRetry(t, nbd, buffers, upload);
      } catch (err) {
        if (result.uploads === 0) throw await explainUploadFailure(t, result.remaining, err);
        result.interrupted = err as Error;
        break;
      }
      const last = upload[upload.length - 1]!;
      const data = totalLength(upload);
      result.cursor = last.offset + last.length;
      result.dataBytes += data;
      result.remaining -= data;
      result.uploads++;
      t.onProgress?.(result.bytes, result.bytes + result.remaining);
    }
  } finally {
    await nbd.close();
  }
  if (result.remaining === 0) return { ...result, cursor: t.virtualSize, done: true };
  return result;
}

async function sendWithRetry(
  t: CbtDiskTransfer,
  nbd: NbdPool,
  buffers: ReadBuffers,
  extents: Extent[],
): Promise<number> {
  return retrying(
    async () => {
      const body = encodeChunked(
        extents,
        reusingReader(buffers, (offset, target) => nbd.readInto(offset, target)),
        {
          diskSize: t.virtualSize,
          maxChunkBytes: CHUNK_BYTES,
          readAhead: READ_AHEAD,
        },
      );
      // the body's own failure (an NBD read) only reaches the import as the connection it cut short
      let bodyError: unknown;
      body.stream.once('error', (e) => {
        bodyError = e;
      });
      try {
        await t.destination.importVdi({
          vdi: t.target,
          format: 'raw',
          chunked: true,
          body: body.stream,
          contentLength: body.length,
          signal: AbortSignal.timeout(t.timeoutMs),
        });
        return body.length;
      } catch (err) {
        body.stream.destroy();
        // as in vhd mode: the task's XAPI error or the source's NBD verdict, not the socket error
        throw realCause(bodyError === undefined ? [err] : [err, bodyError]);
      }
    },
    {
      attempts: t.attempts ?? 3,
      baseMs: 200,
      retryable: isTransient,
      onRetry: (err, attempt) => t.onRetry?.(err as Error, attempt),
    },
  );
}

/** A full destination SR said with the SR and the space the rest of the disk needs, as in vhd mode. */
async function explainUploadFailure(t: CbtDiskTransfer, remaining: number, err: unknown): Promise<unknown> {
  const sr = await t.destination.getRecord('VDI', t.target).then(
    (v) => v.SR,
    () => undefined,
  );
  return sr ? explainNoSpace(t.destination, sr, remaining, err) : err;
}
