/** The pool, session and HTTP helpers the simulator's data-path suites share (data, data-import). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, expect } from 'vitest';
import { type SimPool, startPool } from '../../../sim/index.js';
import { TestSession } from './client.js';

export const MiB = 1024 * 1024;
export const BLOCK = 2 * MiB;
export let pool: SimPool;
export let s: TestSession;
export let dir: string;
export let vmDisk: string; // VDI ref of the halted VM's disk (12 MiB)

/** Starts the pool before the suite that calls it and stops it after. */
export function useDataPool(): void {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sim-data-'));
    pool = await startPool({
      name: 'data',
      hosts: 2,
      password: 'pw',
      srs: [
        { name_label: 'Shared', sizeBytes: 1024 * MiB, shared: true },
        { name_label: 'OnHost2', sizeBytes: 256 * MiB, host: 1 },
        { name_label: 'Dummy', sizeBytes: 1024 * MiB, type: 'dummy', shared: true },
      ],
      vms: [
        {
          name_label: 'src',
          disks: [
            {
              sizeBytes: 12 * MiB,
              data: [
                { offset: 100, length: 3 * MiB, seed: 7 },
                { offset: 6 * MiB, length: 4096, byte: 0xab },
                { offset: 10 * MiB, length: BLOCK, seed: 8 },
              ],
            },
          ],
        },
        {
          name_label: 'local',
          disks: [{ sizeBytes: 4 * MiB, sr: 'OnHost2', data: [{ offset: 0, length: 10, byte: 1 }] }],
        },
      ],
    });
    s = await TestSession.login(pool.url, 'root', 'pw');
    const vm = (await s.call<string[]>('VM.get_by_name_label', 'src'))[0];
    vmDisk = await s.call<string>('VBD.get_VDI', (await s.call<string[]>('VM.get_VBDs', vm))[0]);
  });
  afterAll(async () => {
    await pool?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}

export const uuidOf = (vdi: string): Promise<string> => s.call<string>('VDI.get_uuid', vdi);
export const url = (path: string, q: Record<string, string>): string =>
  `${pool.url}${path}?${new URLSearchParams({ session_id: s.ref, ...q }).toString()}`;

export async function download(
  q: Record<string, string>,
): Promise<{ body: Buffer; headers: Record<string, unknown>; status: number }> {
  const r = await request(url('/export_raw_vdi', q));
  const body = Buffer.from(await r.body.arrayBuffer());
  return { body, headers: r.headers, status: r.statusCode };
}

/** PUT with a client-made task (task_id), as clients must: a server-made task is gone when the transfer ends. */
export async function upload(
  q: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; task: string }> {
  const task = await s.call<string>('task.create', 'upload', '');
  const r = await request(url('/import_raw_vdi', { ...q, task_id: task }), {
    method: 'PUT',
    body,
    headers: { 'content-length': String(body.length) },
  });
  await r.body.dump();
  expect(r.headers['task-id']).toBe(task);
  return { status: r.statusCode, task };
}

export const newVdi = (sizeBytes: number, sr?: string): Promise<string> =>
  (async () =>
    s.call<string>('VDI.create', {
      SR: sr ?? (await s.call<string>('VDI.get_SR', vmDisk)),
      virtual_size: String(sizeBytes),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    }))();
