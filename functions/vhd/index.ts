/**
 * VHD stream codec (MS-VHD dynamic and differencing disks), no XAPI knowledge.
 * - readVhdStream: forward-only reader (any layout whose structures ascend in the file), one block at a time.
 * - VhdVerifier: pass-through Transform that forwards the exact input chunks while checking them.
 * - createVhdWriter: XAPI's /export_raw_vdi layout, length known up front.
 * Every violation is a VhdFormatError with a code and the stream offset where it was found.
 */
export { chsGeometry, decodeFooter, encodeFooter, vhdChecksum } from './footer.js';
export { decodeHeader, encodeHeader } from './header.js';
export {
  checkFooter,
  checkHeader,
  DEFAULT_MAX_METADATA_BYTES,
  type ParseLimits,
  planLayout,
} from './layout.js';
export { VhdStreamParser } from './parser.js';
export { applyVhdToRaw, bitmapRuns, type RawWriter } from './raw.js';
export { type ReadOptions, readVhdStream, type VhdSource, type VhdStreamReader } from './reader.js';
export {
  batBytes,
  bitmapBytes,
  DEFAULT_BLOCK_SIZE,
  SECTOR_SIZE,
  type VhdBlock,
  type VhdDiskType,
  type VhdErrorCode,
  type VhdFooter,
  VhdFormatError,
  type VhdHeader,
  type VhdParentLocator,
  type VhdStreamInfo,
} from './types.js';
export { VhdVerifier } from './verifier.js';
export {
  createVhdWriter,
  type VhdWriter,
  type VhdWriterOptions,
  vhdStreamLength,
  XAPI_TABLE_OFFSET,
} from './writer.js';
