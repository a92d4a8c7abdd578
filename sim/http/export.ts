/** GET /export_raw_vdi: raw (zeros for holes) or VHD (dynamic, or differencing against base=). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createVhdWriter } from '../../functions/vhd/index.js';
import { BLOCK_SIZE, type Disk } from '../disk.js';
import { VDI_IO_ERROR, XapiError } from '../errors.js';
import type { PoolState } from '../state.js';
import { begin, finish, Pacer, param, redirectIfElsewhere, refuse, startOk, writeChunk } from './common.js';

const THROTTLED_CHUNK = 64 * 1024;

async function* rawChunks(disk: Disk): AsyncGenerator<Buffer> {
  const n = Math.ceil(disk.size / BLOCK_SIZE);
  for (let i = 0; i < n; i++) {
    const len = Math.min(BLOCK_SIZE, disk.size - i * BLOCK_SIZE);
    yield disk.blockData(i, true).subarray(0, len);
  }
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
  const format = param(req, t.query, 'format') ?? 'raw';
  if (format !== 'raw' && format !== 'vhd') {
    return refuse(pool, t, res, 404, new XapiError('INTERNAL_ERROR', [`Unknown format ${format}`]), req);
  }
  const disk = pool.disk(vdi);
  const uuid = pool.db.get('VDI', vdi).uuid as string;
  let source: AsyncIterable<Buffer>;
  if (format === 'raw') {
    source = rawChunks(disk);
  } else {
    const baseParam = param(req, t.query, 'base');
    let base: Disk | undefined;
    let baseUuid = '';
    if (baseParam) {
      try {
        const baseRef = pool.db.resolve('VDI', baseParam);
        base = pool.disk(baseRef);
        baseUuid = pool.db.get('VDI', baseRef).uuid as string;
      } catch (e) {
        return refuse(pool, t, res, 500, e as XapiError, req);
      }
    }
    const blocks = base ? disk.diff(base) : disk.allocated();
    const writer = createVhdWriter({
      diskType: base ? 'differencing' : 'dynamic',
      virtualSize: disk.size,
      blocks,
      readBlock: async (i) => disk.blockData(i, true),
      // the parent's identity: XAPI uses the base VHD file's footer uid and path; the VDI uuid stands in
      ...(base
        ? {
            parent: {
              uniqueId: Buffer.from(baseUuid.replace(/-/g, ''), 'hex'),
              unicodeName: `/var/run/sr-mount/${baseUuid}.vhd`,
            },
          }
        : {}),
    });
    source = writer.stream;
  }
  startOk(res, t.task, {
    'content-type': format === 'vhd' ? 'application/vhd' : 'application/octet-stream',
    'content-disposition': `attachment; filename="${uuid}.${format}"`,
  });
  const cut = pool.faults.cutFor('export_raw_vdi');
  const pacer = new Pacer(() => pool.faults.bytesPerSecond);
  let sent = 0;
  let ok = true;
  try {
    outer: for await (const chunk of source) {
      const step = pool.faults.bytesPerSecond ? THROTTLED_CHUNK : chunk.length;
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
