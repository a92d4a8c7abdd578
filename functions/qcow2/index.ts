/**
 * qcow2 stream codec (QEMU's qcow2 v3, as XCP-ng 8.3 stores disks over 2040 GiB), no XAPI knowledge.
 * - createQcow2Writer: an image from allocated clusters, in XAPI's export layout, length known up front.
 * - readQcow2Stream: forward-only reader; the allocated extents come from the header, L1 and L2
 *   tables before any data cluster is read.
 * Every violation is a Qcow2FormatError with a code and the stream offset where it was found.
 */
export { type ByteSource, ForwardReader } from './bytes.js';
export { checkHeader, decodeHeader, encodeHeader } from './header.js';
export { planImage, type Qcow2Plan } from './layout.js';
export { type Qcow2Cluster, type Qcow2StreamReader, readQcow2Stream } from './reader.js';
export {
  DEFAULT_CLUSTER_BITS,
  geometry,
  HEADER_LENGTH,
  QCOW2_MAGIC,
  type Qcow2ErrorCode,
  type Qcow2Extent,
  Qcow2FormatError,
  type Qcow2Header,
} from './types.js';
export { createQcow2Writer, type Qcow2Writer, type Qcow2WriterOptions } from './writer.js';
