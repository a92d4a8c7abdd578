/**
 * Reads a qcow2 image front to back: the header, the L1 table and every L2 table first — which give
 * the allocated guest clusters before any data is read — then the data clusters one at a time as
 * the consumer asks. The image must place each table before what it points to (XAPI's exports do);
 * anything else is NOT_STREAMABLE. Compressed clusters, encryption, external data files and
 * extended L2 entries are refused by name.
 */
import { type ByteSource, ForwardReader } from './bytes.js';
import { decodeHeader, HEADER_PREFIX } from './header.js';
import {
  OFFSET_MASK,
  OFLAG_COMPRESSED,
  OFLAG_ZERO,
  type Qcow2Extent,
  Qcow2FormatError,
  type Qcow2Header,
} from './types.js';

export interface Qcow2Cluster {
  /** guest byte offset */
  offset: number;
  /** the cluster's bytes, cut at the virtual size; valid until the next cluster is asked for */
  data: Buffer;
}

export interface Qcow2StreamReader {
  header: Qcow2Header;
  /** Guest ranges with data clusters (and, marked `zero`, ranges the L2 tables say read as zeros), ascending. */
  extents: Qcow2Extent[];
  /** Bytes of guest data the image holds. */
  dataBytes: number;
  /** The data clusters in file order; ends once the rest of the source was read. Iterate once. */
  clusters(): AsyncGenerator<Qcow2Cluster>;
  /** Stops reading (the source's iterator is returned). */
  close(): Promise<void>;
}

interface DataRef {
  host: number;
  guest: number;
}

function entryOffset(e: bigint, clusterSize: number, what: string, at: number): number {
  const off = Number(e & OFFSET_MASK);
  if (off % clusterSize !== 0)
    throw new Qcow2FormatError('BAD_TABLE', `${what} offset ${off} is not cluster aligned`, at);
  return off;
}

function merge(out: Qcow2Extent[], offset: number, length: number, zero: boolean): void {
  const last = out[out.length - 1];
  if (last && last.offset + last.length === offset && !!last.zero === zero) last.length += length;
  else out.push(zero ? { offset, length, zero } : { offset, length });
}

export async function readQcow2Stream(source: ByteSource): Promise<Qcow2StreamReader> {
  const r = new ForwardReader(source);
  try {
    return await open(r);
  } catch (err) {
    await r.close();
    throw err;
  }
}

async function open(r: ForwardReader): Promise<Qcow2StreamReader> {
  const prefix = await r.read(72, 'the header');
  const v3 = prefix.readUInt32BE(4) === 3;
  let header = decodeHeader(
    v3 ? Buffer.concat([prefix, await r.read(HEADER_PREFIX - 72, 'the header')]) : prefix,
  );
  if (v3 && header.headerLength > HEADER_PREFIX) {
    const rest = await r.read(header.headerLength - HEADER_PREFIX, 'the header');
    header = { ...header, compressionType: rest.readUInt8(0) };
  }
  const cs = 2 ** header.clusterBits;
  const l2Entries = cs / 8;
  const guestClusters = Math.ceil(header.virtualSize / cs);
  if (header.l1Size < Math.ceil(guestClusters / l2Entries))
    throw new Qcow2FormatError(
      'BAD_HEADER',
      `l1_size ${header.l1Size} does not cover ${header.virtualSize} bytes`,
      36,
    );

  const l2s: { host: number; l1: number }[] = [];
  if (header.l1Size > 0) {
    await r.skipTo(header.l1TableOffset, 'the L1 table');
    const l1 = await r.read(header.l1Size * 8, 'the L1 table');
    for (let i = 0; i < header.l1Size; i++) {
      const host = entryOffset(l1.readBigUInt64BE(i * 8), cs, `L1[${i}]`, header.l1TableOffset + i * 8);
      if (host === 0) continue;
      if (i * l2Entries >= guestClusters)
        throw new Qcow2FormatError(
          'BAD_TABLE',
          `L1[${i}] points past the virtual size`,
          header.l1TableOffset + i * 8,
        );
      l2s.push({ host, l1: i });
    }
  }
  l2s.sort((a, b) => a.host - b.host);

  const data: DataRef[] = [];
  const zeros: number[] = [];
  for (const { host, l1 } of l2s) {
    await r.skipTo(host, `the L2 table of L1[${l1}]`);
    const table = await r.read(cs, `the L2 table of L1[${l1}]`);
    for (let j = 0; j < l2Entries; j++) {
      const e = table.readBigUInt64BE(j * 8);
      if (e === 0n) continue;
      const at = host + j * 8;
      const guest = l1 * l2Entries + j;
      if (guest >= guestClusters)
        throw new Qcow2FormatError('BAD_TABLE', `L2 entry for cluster ${guest} is past the virtual size`, at);
      if (e & OFLAG_COMPRESSED)
        throw new Qcow2FormatError('UNSUPPORTED_FEATURE', `compressed cluster ${guest}`, at);
      if (e & OFLAG_ZERO) zeros.push(guest);
      else {
        const off = entryOffset(e, cs, `L2 entry of cluster ${guest}`, at);
        if (off !== 0) data.push({ host: off, guest });
      }
    }
  }
  data.sort((a, b) => a.host - b.host || a.guest - b.guest);
  if (data.length && data[0]!.host < r.pos)
    throw new Qcow2FormatError(
      'NOT_STREAMABLE',
      `the data of cluster ${data[0]!.guest} (byte ${data[0]!.host}) comes before the last L2 table`,
      r.pos,
    );

  const byGuest = [
    ...data.map((d) => ({ guest: d.guest, zero: false })),
    ...zeros.map((g) => ({ guest: g, zero: true })),
  ];
  byGuest.sort((a, b) => a.guest - b.guest);
  const extents: Qcow2Extent[] = [];
  let dataBytes = 0;
  for (const { guest, zero } of byGuest) {
    const offset = guest * cs;
    const length = Math.min(cs, header.virtualSize - offset);
    merge(extents, offset, length, zero);
    if (!zero) dataBytes += length;
  }

  let started = false;
  async function* clusters(): AsyncGenerator<Qcow2Cluster> {
    if (started) throw new Error('clusters() can be iterated only once');
    started = true;
    try {
      let last: { host: number; buf: Buffer } | undefined;
      for (const d of data) {
        if (last?.host !== d.host) {
          await r.skipTo(d.host, `the data of cluster ${d.guest}`);
          last = { host: d.host, buf: await r.read(cs, `the data of cluster ${d.guest}`) };
        }
        const offset = d.guest * cs;
        yield { offset, data: last.buf.subarray(0, Math.min(cs, header.virtualSize - offset)) };
      }
      await r.drain();
    } finally {
      await r.close();
    }
  }

  return { header, extents, dataBytes, clusters, close: () => r.close() };
}
