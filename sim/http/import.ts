/** PUT /import_raw_vdi: raw (plain or xapi-chunked framing), VHD or qcow2; 200 first, failures via the task. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readQcow2Stream } from '../../functions/qcow2/index.js';
import { bitmapRuns, readVhdStream, SECTOR_SIZE } from '../../functions/vhd/index.js';
import { createVdi } from '../api/vdi.js';
import { BLOCK_SIZE, BlockStore, Disk, takeBuffer } from '../disk.js';
import { VDI_IO_ERROR, XapiError } from '../errors.js';
import { Pacer } from '../pace.js';
import type { PoolState } from '../state.js';
import { begin, finish, param, redirectIfElsewhere, refuse, startOk } from './common.js';

/** Thrown when a cutStream fault stops the server reading. */
class Cut extends Error {}

/** The request body, counted, paced, and cut after `cut` bytes when asked. */
async function* body(
  req: IncomingMessage,
  pool: PoolState,
  hostIndex: number,
  cut: number | undefined,
  onBytes: (n: number) => void,
): AsyncGenerator<Buffer> {
  const pacer = new Pacer(() => pool.faults.bytesPerSecond, pool.faults.host(hostIndex));
  let seen = 0;
  for await (const c of req) {
    let chunk = c as Buffer;
    if (cut !== undefined && seen + chunk.length > cut) {
      chunk = chunk.subarray(0, Math.max(0, cut - seen));
      if (chunk.length) yield chunk;
      throw new Cut('stream cut');
    }
    seen += chunk.length;
    onBytes(chunk.length);
    yield chunk;
    await pacer.account(chunk.length);
  }
}

/** Exactly `n` bytes from the iterator (short → VDI_IO_ERROR). */
class Pull {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}
  async take(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      if (this.buf.length === 0) {
        if (this.done) throw VDI_IO_ERROR();
        const r = await this.it.next();
        if (r.done) {
          this.done = true;
          continue;
        }
        this.buf = r.value;
      }
      const k = Math.min(n - have, this.buf.length);
      parts.push(this.buf.subarray(0, k));
      this.buf = this.buf.subarray(k);
      have += k;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }
  /** The next available chunk, up to `max` bytes; undefined at the end. */
  async some(max: number): Promise<Buffer | undefined> {
    if (this.buf.length === 0) {
      if (this.done) return undefined;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return undefined;
      }
      this.buf = r.value;
    }
    const k = Math.min(max, this.buf.length);
    const out = this.buf.subarray(0, k);
    this.buf = this.buf.subarray(k);
    return out;
  }
}

/**
 * The disk of a VDI on an SR of type "dummy" (like XenServer's DummySR, made for testing): the data
 * path works in full, with every check, but the bytes are not kept — so benchmarks can move disks far
 * larger than this machine's memory.
 */
class DiscardingDisk extends Disk {
  constructor(size: number) {
    super(new BlockStore(Number.POSITIVE_INFINITY), size);
  }
  override write(offset: number, data: Buffer): void {
    if (offset < 0 || offset + data.length > this.size) throw VDI_IO_ERROR();
  }
  override putBlock(i: number): void {
    if (i < 0 || i * BLOCK_SIZE >= this.size) throw VDI_IO_ERROR();
  }
}

function checkedWrite(disk: Disk, offset: number, data: Buffer): void {
  if (offset + data.length > disk.size) throw VDI_IO_ERROR();
  disk.write(offset, data);
}

/**
 * A whole block's data for the disk to keep. Without reuseBlockBuffer the parser gives each block a
 * buffer of its own (or a view of a source chunk): one that is a whole BLOCK_SIZE allocation is never
 * written again, so the disk owns it as is — no second fresh 2 MiB buffer to fault in, no copy
 * (a view of a request chunk, smaller than a block, is copied: keeping it would pin the chunk).
 */
function ownBlock(data: Buffer): Buffer {
  if (data.byteOffset === 0 && data.buffer.byteLength === BLOCK_SIZE) return data;
  const buf = takeBuffer();
  data.copy(buf);
  return buf;
}

async function importVhd(disk: Disk, src: AsyncIterable<Buffer>, length: number): Promise<void> {
  // a disk that keeps nothing lets the parser reuse one buffer for every block
  const discards = disk instanceof DiscardingDisk;
  const { info, blocks } = await readVhdStream(src, { expectedLength: length, reuseBlockBuffer: discards });
  const sectors = info.blockSize / SECTOR_SIZE;
  for await (const block of blocks()) {
    const base = block.index * info.blockSize;
    const runs = bitmapRuns(block.bitmap, sectors);
    if (info.blockSize === BLOCK_SIZE && runs.length === 1 && runs[0]![0] === 0 && runs[0]![1] === sectors) {
      if (base + BLOCK_SIZE > disk.size) throw VDI_IO_ERROR();
      disk.putBlock(block.index, discards ? block.data : ownBlock(block.data));
      continue;
    }
    for (const [first, count] of runs) {
      checkedWrite(
        disk,
        base + first * SECTOR_SIZE,
        block.data.subarray(first * SECTOR_SIZE, (first + count) * SECTOR_SIZE),
      );
    }
  }
}

/** qcow-stream-tool's decode: each cluster the image holds is written over the VDI's contents. */
async function importQcow2(disk: Disk, src: AsyncIterable<Buffer>): Promise<void> {
  const image = await readQcow2Stream(src);
  for (const e of image.extents) {
    if (!e.zero) continue;
    for (let at = 0; at < e.length; at += BLOCK_SIZE)
      checkedWrite(disk, e.offset + at, ZERO.subarray(0, Math.min(BLOCK_SIZE, e.length - at)));
  }
  for await (const c of image.clusters()) checkedWrite(disk, c.offset, c.data);
}

async function importRaw(disk: Disk, pull: Pull, length: number): Promise<void> {
  if (length > disk.size) throw VDI_IO_ERROR();
  let pos = 0;
  while (pos < length) {
    const blockEnd = (Math.floor(pos / BLOCK_SIZE) + 1) * BLOCK_SIZE;
    const n = Math.min(blockEnd, length) - pos;
    const data = await pull.take(n);
    const i = Math.floor(pos / BLOCK_SIZE);
    // a whole zero block over a hole changes nothing: keep it sparse
    if (!(n === BLOCK_SIZE && !disk.blocks.has(i) && isZero(data)))
      checkedWrite(disk, pos, Buffer.from(data));
    pos += n;
  }
}

const ZERO = Buffer.alloc(BLOCK_SIZE);
const isZero = (b: Buffer): boolean => b.equals(ZERO.subarray(0, b.length));

/** xapi's own framing: {offset u64 LE, length u32 LE} + data, ended by a 0/0 header. */
async function importChunked(disk: Disk, pull: Pull): Promise<void> {
  for (;;) {
    const h = await pull.take(12);
    const offset = Number(h.readBigUInt64LE(0));
    const len = h.readUInt32LE(8);
    if (offset === 0 && len === 0) return;
    let done = 0;
    while (done < len) {
      const piece = await pull.some(Math.min(len - done, BLOCK_SIZE));
      if (!piece) throw VDI_IO_ERROR();
      checkedWrite(disk, offset + done, Buffer.from(piece));
      done += piece.length;
    }
  }
}

export async function handleImport(
  pool: PoolState,
  hostIndex: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = begin(pool, hostIndex, 'import_raw_vdi', req, res);
  if (!t) return;
  const te = req.headers['transfer-encoding'];
  if (te)
    return refuse(pool, t, res, 404, new XapiError('INTERNAL_ERROR', [`Cannot handle encoding: ${te}`]), req);
  const given = param(req, t.query, 'format') ?? 'raw';
  const format = given.toLowerCase();
  const chunked = t.query.has('chunked');
  if (format !== 'raw' && format !== 'vhd' && format !== 'qcow2') {
    return refuse(pool, t, res, 404, new XapiError('INTERNAL_ERROR', [`Unknown format ${given}`]), req);
  }
  if (format !== 'raw' && chunked)
    return refuse(pool, t, res, 404, new XapiError('INTERNAL_ERROR', ['Cannot handle chunked VHD']), req);
  const lenHeader = req.headers['content-length'];
  const length = lenHeader === undefined ? undefined : Number(lenHeader);
  const vdiParam = param(req, t.query, 'vdi');
  const srParam = param(req, t.query, 'sr_id') ?? param(req, t.query, 'sr_uuid');
  let vdi: string;
  try {
    if (vdiParam) vdi = pool.db.resolve('VDI', vdiParam);
    else if (!srParam) return refuse(pool, t, res, 400, new XapiError('VDI_MISSING', []), req);
    else if (format !== 'raw') {
      const what = format === 'vhd' ? 'VHD' : 'QCOW2';
      return refuse(
        pool,
        t,
        res,
        400,
        new XapiError('INTERNAL_ERROR', [`Importing a ${what} directly into an SR not yet supported`]),
        req,
      );
    } else {
      const sr = pool.db.resolve('SR', srParam);
      if (redirectIfElsewhere(pool, hostIndex, sr, req, res)) return finish(pool, t);
      vdi = createVdi(pool, sr, {
        name_label: 'Imported VDI',
        virtual_size: length ?? 0,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      });
    }
  } catch (e) {
    return refuse(
      pool,
      t,
      res,
      500,
      e instanceof XapiError ? e : new XapiError('INTERNAL_ERROR', [String(e)]),
      req,
    );
  }
  if (redirectIfElsewhere(pool, hostIndex, pool.db.get('VDI', vdi).SR as string, req, res))
    return finish(pool, t);
  startOk(res, t.task, { 'content-type': 'text/html' });
  const sr = pool.db.get('VDI', vdi).SR as string;
  const disk =
    pool.db.get('SR', sr).type === 'dummy' ? new DiscardingDisk(pool.disk(vdi).size) : pool.disk(vdi);
  const cut = pool.faults.cutFor('import_raw_vdi');
  let received = 0;
  const total = length ?? disk.size;
  let lastTick = 0;
  const src = body(req, pool, hostIndex, cut, (n) => {
    received += n;
    pool.importedBytes += n;
    if (received - lastTick > 8 * BLOCK_SIZE) {
      lastTick = received;
      pool.setProgress(t.task, Math.min(0.99, received / Math.max(1, total)));
    }
  });
  try {
    if (length === undefined) throw new XapiError('VDI_IO_ERROR', ['Device I/O errors']);
    if (format === 'vhd') await importVhd(disk, src, length);
    else if (format === 'qcow2') await importQcow2(disk, src);
    else if (chunked) await importChunked(disk, new Pull(src[Symbol.asyncIterator]()));
    else await importRaw(disk, new Pull(src[Symbol.asyncIterator]()), length);
    pool.syncVdi(vdi);
    pool.completeTask(t.task, vdi);
    finish(pool, t);
    res.end();
  } catch (e) {
    pool.syncVdi(vdi);
    const err = e instanceof XapiError ? e : VDI_IO_ERROR();
    pool.failTask(t.task, err);
    finish(pool, t);
    res.end();
    // stop reading: the peer sees the connection close
    req.destroy();
    res.socket?.destroy();
  }
}
