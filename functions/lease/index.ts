export { DynamoLeaseStore, type DynamoLeaseStoreOptions } from './dynamo.js';
export { LeaseContentionError } from './errors.js';
export { FileLeaseStore, type FileLeaseStoreOptions, LeaseHeldError } from './file.js';
