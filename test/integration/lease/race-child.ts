// A separate process racing for file leases; run by file-cross-process.test.ts.
// Prints `ready`, waits for `go` on stdin so all children start together, then one JSON line; stays
// alive (a live holder) until its stdin ends.
import { createInterface } from 'node:readline';
import { FileLeaseStore } from '../../../functions/lease/file.js';

const [dir, owner, roundsArg] = process.argv.slice(2);
if (!dir || !owner || !roundsArg) throw new Error('usage: race-child <dir> <owner> <rounds>');
const store = new FileLeaseStore(dir);
const TTL = 60_000;

process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
for (let next = await lines.next(); !next.done && next.value !== 'go'; next = await lines.next()) {}

const stale = await store.acquire('stale', owner, TTL);
const rounds: boolean[] = [];
for (let r = 0; r < Number(roundsArg); r++)
  rounds.push((await store.acquire(`round-${r}`, owner, TTL)).acquired);
const held: boolean[] = [];
for (let r = 0; r < Number(roundsArg); r++) held.push((await store.acquire('held', owner, TTL)).acquired);
process.stdout.write(`${JSON.stringify({ owner, rounds, held, stale })}\n`);
while (!(await lines.next()).done) {}
