/**
 * NBD wire constants and codecs for the subset xapi-nbd speaks: fixed-newstyle handshake,
 * NBD_OPT_EXPORT_NAME (+ optional NBD_OPT_STARTTLS), simple replies, READ and DISC.
 * Reference: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
 */

export const NBDMAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const OPT_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const HANDSHAKE_FLAG_FIXED_NEWSTYLE = 1;
export const CLIENT_FLAG_FIXED_NEWSTYLE = 1;

export const OPT_EXPORT_NAME = 1;
export const OPT_STARTTLS = 5;

export const REP_ACK = 1;
export const REP_ERR_BIT = 0x80000000;

export const TRANSMISSION_FLAG_HAS_FLAGS = 1;
export const TRANSMISSION_FLAG_READ_ONLY = 2;

export const CMD_READ = 0;
export const CMD_DISC = 2;

export const SECTOR = 512;
/** Bytes after size+flags in the EXPORT_NAME reply when NO_ZEROES is not negotiated. */
export const EXPORT_NAME_PADDING = 124;
export const REQUEST_BYTES = 28;
export const SIMPLE_REPLY_BYTES = 16;

/** Errno values the NBD protocol defines for replies. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};

export const OPT_REPLY_NAMES: Readonly<Record<number, string>> = {
  2147483649: 'ERR_UNSUP',
  2147483650: 'ERR_POLICY',
  2147483651: 'ERR_INVALID',
  2147483652: 'ERR_PLATFORM',
  2147483653: 'ERR_TLS_REQD',
  2147483654: 'ERR_UNKNOWN',
  2147483655: 'ERR_SHUTDOWN',
  2147483656: 'ERR_BLOCK_SIZE_REQD',
  2147483657: 'ERR_TOO_BIG',
};

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(16 + data.length);
  out.writeBigUInt64BE(IHAVEOPT, 0);
  out.writeUInt32BE(option, 8);
  out.writeUInt32BE(data.length, 12);
  data.copy(out, 16);
  return out;
}

export function encodeRequest(type: number, handle: number, offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(REQUEST_BYTES);
  out.writeUInt32BE(REQUEST_MAGIC, 0);
  out.writeUInt16BE(0, 4);
  out.writeUInt16BE(type, 6);
  // Handles are a per-connection counter < 2^53: high word then low word.
  out.writeUInt32BE(Math.floor(handle / 0x100000000), 8);
  out.writeUInt32BE(handle >>> 0, 12);
  out.writeBigUInt64BE(BigInt(offset), 16);
  out.writeUInt32BE(length, 24);
  return out;
}

export interface SimpleReply {
  error: number;
  handle: number;
}

/** Decodes a 16-byte simple reply header, or throws if it is not one (e.g. a structured reply). */
export function decodeSimpleReply(buf: Buffer): SimpleReply {
  const magic = buf.readUInt32BE(0);
  if (magic !== SIMPLE_REPLY_MAGIC) {
    throw new Error(`unexpected reply magic 0x${magic.toString(16)}`);
  }
  return { error: buf.readUInt32BE(4), handle: buf.readUInt32BE(8) * 0x100000000 + buf.readUInt32BE(12) };
}

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

export function optReplyName(type: number): string {
  return OPT_REPLY_NAMES[type] ?? `reply 0x${type.toString(16)}`;
}
