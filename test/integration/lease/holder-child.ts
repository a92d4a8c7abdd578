// A local run that takes a lease and then hangs until killed; run by takeover.test.ts and the CLI tests.
import { FileLeaseStore } from '../../../functions/lease/file.js';

const [dir, key, owner] = process.argv.slice(2);
if (!dir || !key || !owner) throw new Error('usage: holder-child <dir> <key> <owner>');
const lease = await new FileLeaseStore(dir).acquire(key, owner, 60 * 60 * 1000);
process.stdout.write(`${lease.acquired ? 'held' : 'refused'}\n`);
setInterval(() => undefined, 60_000);
