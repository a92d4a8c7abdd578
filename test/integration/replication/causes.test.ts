/** Failures are reported by their real cause: the XAPI error of the task, not the socket error it caused. */
import { afterEach, describe, expect, it } from 'vitest';
import { MiB, type Sites, startSites } from '../../support/sites.js';

let sites: Sites | undefined;
afterEach(async () => {
  await sites?.close();
  sites = undefined;
});

const full = (seed: number) => ({ sizeBytes: 16 * MiB, data: [{ offset: 0, length: 16 * MiB, seed }] });
const SR_MESSAGE = /SR "Replica storage" \([0-9a-f-]{36}\) has \d+ MiB free; this disk needs up to 1[67] MiB/;

describe('a full destination SR', () => {
  it('during the import: fails once with SR_BACKEND_FAILURE_44 (not the socket reset), names the SR and the space, leaks nothing', async () => {
    sites = await startSites({
      vms: [{ name_label: 'big', disks: [full(1), full(2)] }],
      replicaSrBytes: 24 * MiB,
    });
    const started = Date.now();
    const run = await sites.run();
    expect(run.status).toBe('failed');
    const vm = run.vms[0]!;
    expect(vm.errorCode).toBe('SR_BACKEND_FAILURE_44');
    expect(vm.message).toContain('There is insufficient space');
    expect(vm.message).toContain('(import_raw_vdi)');
    expect(vm.message).toMatch(SR_MESSAGE);
    expect(vm.message).not.toMatch(/ECONNRESET|EPIPE|TRANSPORT_ERROR/);
    // Permanent: each disk was sent once (one import task per disk), no retry delays.
    expect(sites.destination.test.calls().filter((c) => c === 'task.create')).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(15_000);
    sites.assertNoLeaks();
  });

  it('in cbt mode too: an upload fails once with SR_BACKEND_FAILURE_44 naming the SR and the space, leaks nothing', async () => {
    sites = await startSites({
      vms: [{ name_label: 'big', disks: [full(4), full(5)] }],
      replicaSrBytes: 24 * MiB,
      job: { enableCbt: true, transferMode: 'cbt' },
      sourceNbdPurpose: 'insecure_nbd',
    });
    const run = await sites.run();
    expect(run.status).toBe('failed');
    const vm = run.vms[0]!;
    expect(vm.modes?.map((m) => m.mode)).toEqual(['cbt', 'cbt']);
    expect(vm.errorCode).toBe('SR_BACKEND_FAILURE_44');
    expect(vm.message).toContain('(import_raw_vdi)');
    expect(vm.message).toMatch(SR_MESSAGE);
    expect(vm.message).not.toMatch(/ECONNRESET|EPIPE|TRANSPORT_ERROR/);
    // permanent: no upload sent again
    expect(sites.logs.filter((l) => l.message === 'cbt upload failed; sending it again')).toEqual([]);
    sites.assertNoLeaks();
  });

  it('when the target is created: the same message from VDI.create', async () => {
    sites = await startSites({ vms: [{ name_label: 'big', disks: [full(3)] }], replicaSrBytes: 8 * MiB });
    const vm = (await sites.run()).vms[0]!;
    expect(vm).toMatchObject({ status: 'failed', errorCode: 'SR_BACKEND_FAILURE_44' });
    expect(vm.message).toContain('(VDI.create)');
    expect(vm.message).toMatch(SR_MESSAGE);
    sites.assertNoLeaks();
  });
});
