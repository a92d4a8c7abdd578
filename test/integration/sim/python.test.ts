/** An independent client: os_xenapi's XenAPI (Python) against the simulator, in a spawned process. */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';

const here = dirname(fileURLToPath(import.meta.url));
let pool: SimPool;

beforeAll(async () => {
  pool = await startPool({
    name: 'py',
    srs: [{ name_label: 'Local', sizeBytes: 256 * 1024 * 1024 }],
    vms: [
      { name_label: 'web', power_state: 'Running', disks: [{ sizeBytes: 4 * 1024 * 1024 }] },
      { name_label: 'db', power_state: 'Halted' },
    ],
  });
});
afterAll(async () => {
  await pool?.close();
});

it('os_xenapi logs in, reads records, snapshots via a task and sees XAPI error codes', async () => {
  const { stdout } = await promisify(execFile)(
    '/usr/bin/python3',
    [join(here, 'xenapi_client.py'), pool.url, pool.username, pool.password],
    { timeout: 30_000 },
  );
  const out = JSON.parse(stdout) as Record<string, unknown>;
  expect(out.vms).toEqual(['db', 'web']);
  // XML-RPC types as the Python client decodes them: ints arrive as strings
  expect(out.types).toEqual({
    memory_static_max: 'str',
    is_a_template: 'bool',
    snapshot_time: 'DateTime',
    VBDs: 'list',
    other_config: 'dict',
  });
  const task = out.task as Record<string, unknown>;
  expect(task.status).toBe('success');
  expect(task.progress).toBe(1);
  expect(task.result).toMatch(/^<value>OpaqueRef:.+<\/value>$/);
  expect(out.snapshot).toEqual({
    is_a_snapshot: true,
    is_a_template: true,
    power_state: 'Halted',
    snapshot_of: out.web,
  });
  expect(out.error).toEqual(['HANDLE_INVALID', 'VM', 'OpaqueRef:does-not-exist']);
  expect(out.power_error).toEqual(['VM_BAD_POWER_STATE', out.web, 'halted', 'running']);
  expect(pool.test.calls()).toContain('Async.VM.snapshot');
});
