export { Xapi, type XapiOptions } from './client.js';
export { ClientCodes, isXapiError, realCause, XapiError, XapiTransportError } from './errors.js';
export { asDouble, formatXapiDate, parseXapiDate, XapiDouble } from './marshal.js';
export type * from './records.js';
export type { TransportKind } from './rpc.js';
export { fingerprintOfPem, normaliseFingerprint, type TlsOptions } from './tls.js';
export type { ExportVdiOptions, ImportVdiOptions, VdiExport } from './transfer.js';
export { onWritten } from './written.js';
