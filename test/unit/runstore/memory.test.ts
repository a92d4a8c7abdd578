import { describe } from 'vitest';
import { MemoryRunStore } from '../../support/memory-run-store.js';
import { runStoreContract } from '../../support/runstore-contract.js';

describe('MemoryRunStore (the fake steps use it)', () => {
  runStoreContract(() => new MemoryRunStore());
});
