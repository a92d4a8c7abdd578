/** GET /export_raw_vdi: raw (zeros for holes), VHD (dynamic, or differencing against base=) or qcow2. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createVhdWriter } from '../../functions/vhd/index.js';
import { BLOCK_SIZE, type Disk } from '../disk.js';
import { VDI_IO_ERROR, XapiError } from '../errors.js';
import { Pacer } from '../pace.js';
import type { PoolState } from '../state.js';
import { imageFormatOf, MAX_VHD_SIZE } from '../storage/formats.js';
import { begin, finish, param, redirectIfElsewhere, refuse, startOk, writeChunk } from './common.js';
import { qcow2Export } from './qcow2-export.js';

const THROTTLED_CHUNK = 64 * 1024;

async function* rawChunks(disk: Disk): AsyncGenerator<Buffer> {
  const n = Math.ceil(disk.size / BLOCK_SIZE);
  for (let i = 0; i < n; i++) {
    const len = Math.min(BLOCK_SIZE, disk.size - i * BLOCK_SIZE);
    yield disk.blockData(i, true).subarray(0, len);
  }
}

const CONTENT_TYPE: Record<string, string> = {
  raw: 'application/octet-stream',
  vhd: 'application/vhd',
  qcow2: 'application/x-qemu-disk',
};

/** A dynamic VHD of the allocated blocks, or a differencing one of the blocks changed since `base`. */
function vhdExport(disk: Disk, base: { disk: Disk; uuid: string } | undefined): AsyncIterable<Buffer> {
  return createVhdWriter({
    diskType: base ? 'differencing' : 'dynamic',
    virtualSize: disk.size,
    blocks: base ? disk.diff(base.disk) : disk.allocated(),
    readBlock: async (i) => disk.blockData(i, true),
    // the parent's identity: XAPI uses the base VHD file's footer uid and path; the VDI uuid stands in
    ...(base
      ? {
          parent: {
            uniqueId: Buffer.from(base.uuid.replace(/-/g, ''), 'hex'),
            unicodeName: `/var/run/sr-mount/${base.uuid}.vhd`,
          },
        }
      : {}),
  }).stream;
}

export async function handleExport(
  pool: PoolState,
  hostIndex: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = begin(pool, hostIndex, 'export_raw_vdi', req, res);
  if (!t) return;
  const vdiParam = param(req, t.query, 'vdi');
  let vdi: string;
  try {
    if (!vdiParam) throw new XapiError('INTERNAL_ERROR', ['missing vdi parameter']);
    vdi = pool.db.resolve('VDI', vdiParam);
  } catch (e) {
    return refuse(pool, t, res, 500, e as XapiError, req);
  }
  if (pool.db.get('VDI', vdi).type === 'cbt_metadata') {
    return refuse(pool, t, res, 500, new XapiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'cbt_metadata']), req);
  }
  if (redirectIfElsewhere(pool, hostIndex, pool.db.get('VDI', vdi).SR as string, req, res))
    return finish(pool, t);
  const given = param(req, t.query, 'format') ?? 'raw';
  const format = given.toLowerCase();
  if (format !== 'raw' && format !== 'vhd' && format !== 'qcow2') {
    return refuse(pool, t, res, 404, new XapiError('INTERNAL_ERROR', [`Unknown format ${given}`]), req);
  }
  const disk = pool.disk(vdi);
  const uuid = pool.db.get('VDI', vdi).uuid as string;
  let base: { ref: string; disk: Disk; uuid: string } | undefined;
  const baseParam = param(req, t.query, 'base');
  if (baseParam && format !== 'raw') {
    try {
      const ref = pool.db.resolve('VDI', baseParam);
      base = { ref, disk: pool.disk(ref), uuid: pool.db.get('VDI', ref).uuid as string };
    } catch (e) {
      return refuse(pool, t, res, 500, e as XapiError, req);
    }
  }
  // xapi's checks that come after the 200 (the client then sees an empty body and a failed task)
  let late: XapiError | undefined;
  if (format === 'vhd' && disk.size > MAX_VHD_SIZE)
    late = new XapiError('VDI_TOO_LARGE', [vdi, String(MAX_VHD_SIZE)]);
  else if (format === 'vhd' && base && imageFormatOf(pool, vdi) === 'qcow2')
    late = new XapiError('INTERNAL_ERROR', ['Cannot compute differences on non-VHD images']);
  else if (format === 'vhd' && base && imageFormatOf(pool, base.ref) === 'qcow2')
    late = new XapiError('INTERNAL_ERROR', [
      'Vhd_tool_wrapper.send: base VDI is not a vhd; cannot compute differences',
    ]);
  const source: AsyncIterable<Buffer> = late
    ? (async function* () {})()
    : format === 'raw'
      ? rawChunks(disk)
      : format === 'qcow2'
        ? qcow2Export(disk, base?.disk).stream
        : vhdExport(disk, base);
  startOk(res, t.task, {
    'content-type': CONTENT_TYPE[format]!,
    'content-disposition': `attachment; filename="${uuid}.${format}"`,
  });
  if (late) {
    pool.failTask(t.task, late);
    finish(pool, t);
    res.end();
    return;
  }
  const cut = pool.faults.cutFor('export_raw_vdi');
  const pacer = new Pacer(() => pool.faults.bytesPerSecond, pool.faults.host(hostIndex));
  let sent = 0;
  let ok = true;
  try {
    outer: for await (const chunk of source) {
      const step = pool.faults.paced() ? THROTTLED_CHUNK : chunk.length;
      for (let at = 0; at < chunk.length; at += step) {
        let piece = chunk.subarray(at, Math.min(chunk.length, at + step));
        if (cut !== undefined && sent + piece.length > cut) {
          piece = piece.subarray(0, Math.max(0, cut - sent));
          if (piece.length) await writeChunk(res, piece);
          sent += piece.length;
          ok = false;
          break outer;
        }
        if (!(await writeChunk(res, piece))) {
          ok = false;
          break outer;
        }
        sent += piece.length;
        await pacer.account(piece.length);
      }
    }
  } catch {
    ok = false;
  }
  pool.exportedBytes += sent;
  if (ok) pool.completeTask(t.task, undefined);
  else pool.failTask(t.task, VDI_IO_ERROR());
  finish(pool, t);
  if ('destroy' in source && typeof source.destroy === 'function') (source as { destroy(): void }).destroy();
  res.end();
}
