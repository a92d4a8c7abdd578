/** NBD transfer mode building blocks: no XAPI knowledge here (callers pass `VDI.get_nbd_info` records). */
export { CHUNK_HEADER_BYTES, type ChunkedBody, type ChunkedOptions, encodeChunked } from './chunked.js';
export { NbdClient, type NbdConnectOptions, type NbdReader, type NbdTlsOptions } from './client.js';
export {
  NbdConnectionError,
  NbdError,
  NbdProtocolError,
  NbdReplyError,
  NbdTimeoutError,
} from './errors.js';
export {
  alignExtents,
  batchExtents,
  CBT_BLOCK_SIZE,
  coalesceExtents,
  decodeCbtBitmap,
  type Extent,
  totalLength,
} from './extents.js';
export { type NbdExportInfo, NbdPool, type NbdPoolOptions } from './pool.js';
