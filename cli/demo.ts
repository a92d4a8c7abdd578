/** `npm start`: the embedded demo (see demo-run.ts); exits 1 when a recovery point does not verify. */
import { runDemo } from './demo-run.js';

process.exitCode = await runDemo();
