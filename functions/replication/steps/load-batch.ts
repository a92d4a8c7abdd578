import type { RunContext } from '../context.js';
import type { LoadBatchInput, LoadBatchOutput } from '../contract.js';
import { loadBatch as readBatch } from '../run-results.js';

/** The first state of a batch child: its slice of the run's work list, read from the run store. */
export async function loadBatch(ctx: RunContext, input: LoadBatchInput): Promise<LoadBatchOutput> {
  return readBatch(ctx.runs, input);
}
