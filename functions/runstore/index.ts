export { DynamoRunStore, type DynamoRunStoreOptions, RunStoreWriteError } from './dynamo.js';
export { FileRunStore, type FileRunStoreOptions } from './file.js';
export type { RunStore, StoredRecord, StoredResult } from './port.js';
export { RUN_DATA_TTL_MS } from './port.js';
