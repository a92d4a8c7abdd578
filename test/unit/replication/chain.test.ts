/** Destination chain checks over a fake XAPI: depth, the bounded wait, the flat copy, 109. */
import { describe, expect, it } from 'vitest';
import { chainDepth, cloneWithinChainLimit } from '../../../functions/replication/chain.js';
import type { Xapi } from '../../../functions/xapi/index.js';

type Vdis = Record<string, { uuid: string; parent?: string }>;
const xapiError = (code: string) => Object.assign(new Error(code), { name: 'XapiError', code });

/**
 * VDIs by ref: uuid and parent uuid, answered as xapi does (HANDLE_INVALID, UUID_INVALID).
 * `before` runs before each read, so a test can put a GC step or a fault between two calls.
 */
function fakeXapi(vdis: Vdis, onClone?: () => unknown, before?: (method: string, arg: string) => void) {
  const calls: string[] = [];
  const xapi = {
    async call(method: string, ref: string) {
      calls.push(method);
      if (method !== 'VDI.get_sm_config') throw new Error(method);
      before?.(method, ref);
      const vdi = vdis[ref];
      if (!vdi) throw xapiError('HANDLE_INVALID');
      return vdi.parent ? { 'vhd-parent': vdi.parent } : {};
    },
    async callAsync(method: string, ref: string) {
      calls.push(method);
      if (method === 'VDI.clone' && onClone) {
        const err = onClone();
        if (err) throw err;
      }
      return `${method}:${ref}`;
    },
    async getByUuid(_cls: string, uuid: string) {
      before?.('VDI.get_by_uuid', uuid);
      const hit = Object.entries(vdis).find(([, v]) => v.uuid === uuid);
      if (!hit) throw xapiError('UUID_INVALID');
      return hit[0];
    },
  };
  return { xapi: xapi as unknown as Xapi, calls, vdis };
}

const chainOf = (n: number) => {
  const vdis: Record<string, { uuid: string; parent?: string }> = {};
  for (let i = 0; i < n; i++)
    vdis[`r${i}`] = { uuid: `u${i}`, ...(i + 1 < n ? { parent: `u${i + 1}` } : {}) };
  return vdis;
};

/** SM's non-leaf coalesce of `ref` into its parent: its children are relinked, it is forgotten. */
function coalesce(vdis: Vdis, ref: string): void {
  const gone = vdis[ref]!;
  for (const v of Object.values(vdis)) if (v.parent === gone.uuid) v.parent = gone.parent;
  delete vdis[ref];
}

describe('chainDepth', () => {
  it('counts the disk and every parent; a cycle stops at the bound', async () => {
    expect(await chainDepth(fakeXapi(chainOf(1)).xapi, 'r0')).toBe(1);
    expect(await chainDepth(fakeXapi(chainOf(5)).xapi, 'r0')).toBe(5);
    const cyclic = { a: { uuid: 'ua', parent: 'ub' }, b: { uuid: 'ub', parent: 'ua' } };
    expect(await chainDepth(fakeXapi(cyclic).xapi, 'a')).toBe(33);
  });

  // Each row: a chain of 12, and one GC coalesce landing just before the nth read of the walk.
  // The walk must report the chain as it is afterwards (11), never the part it had seen (the defect
  // the chain soak found: a depth-12 recovery point measured as 2 and cloned to 13).
  it.each([
    ['before looking up the parent it just read', 'VDI.get_by_uuid', 'u3', 'r3'],
    ['after looking it up, before reading its sm_config', 'VDI.get_sm_config', 'r3', 'r3'],
    ['under the first parent', 'VDI.get_by_uuid', 'u1', 'r1'],
  ])('a parent coalesced away %s: walks again and counts the rest', async (_, method, at, victim) => {
    const vdis = chainOf(12);
    let fired = false;
    const f = fakeXapi(vdis, undefined, (m, arg) => {
      if (!fired && m === method && arg === at) {
        fired = true;
        coalesce(vdis, victim);
      }
    });
    expect(await chainDepth(f.xapi, 'r0')).toBe(11);
    expect(fired).toBe(true);
  });

  it('never guesses: any other failure on the way propagates, and so does the disk itself gone', async () => {
    const f = fakeXapi(chainOf(12), undefined, (m, arg) => {
      if (m === 'VDI.get_by_uuid' && arg === 'u2') throw xapiError('SR_BACKEND_FAILURE_47');
    });
    await expect(chainDepth(f.xapi, 'r0')).rejects.toMatchObject({ code: 'SR_BACKEND_FAILURE_47' });
    await expect(chainDepth(fakeXapi(chainOf(2)).xapi, 'nope')).rejects.toMatchObject({
      code: 'HANDLE_INVALID',
    });
  });

  it('a parent xapi never knows: a transient error after a few walks, not a short depth', async () => {
    const f = fakeXapi({ a: { uuid: 'ua', parent: 'gone' } });
    await expect(chainDepth(f.xapi, 'a')).rejects.toMatchObject({
      name: 'XcrTransientError',
      code: 'VDI_CHAIN_CHANGING',
    });
    expect(f.calls.filter((c) => c === 'VDI.get_sm_config').length).toBe(6);
  });
});

describe('cloneWithinChainLimit', () => {
  const policy = { maxDepth: 4, waitMs: 0, pollMs: 1 };
  it('clones below the limit', async () => {
    const f = fakeXapi(chainOf(3));
    expect(await cloneWithinChainLimit(f.xapi, 'r0', 'sr', policy)).toEqual({
      ref: 'VDI.clone:r0',
      how: 'clone',
      sourceDepth: 3,
    });
  });

  it('at the limit waits for a coalesce that shortens the chain, then clones', async () => {
    const f = fakeXapi(chainOf(4));
    setTimeout(() => {
      delete f.vdis.r2!.parent; // the GC merged r3 into r2
      delete f.vdis.r3;
    }, 30);
    const made = await cloneWithinChainLimit(f.xapi, 'r0', 'sr', { ...policy, waitMs: 5000, pollMs: 10 });
    expect(made).toMatchObject({ how: 'clone', sourceDepth: 3 });
  });

  it('copies flat with a warning when the wait runs out, and when the clone answers 109', async () => {
    const deep = await cloneWithinChainLimit(fakeXapi(chainOf(4)).xapi, 'r0', 'sr', {
      ...policy,
      waitMs: 20,
    });
    expect(deep).toMatchObject({ ref: 'VDI.copy:r0', how: 'copy', sourceDepth: 4 });
    expect(deep.warning).toMatch(/VHD chain of 4 at the limit of 4 after waiting 0 s/);
    const f = fakeXapi(chainOf(2), () => Object.assign(new Error('109'), { code: 'SR_BACKEND_FAILURE_109' }));
    const refused = await cloneWithinChainLimit(f.xapi, 'r0', 'sr', policy);
    expect(refused).toMatchObject({ how: 'copy' });
    expect(refused.warning).toMatch(/SR_BACKEND_FAILURE_109/);
    expect(f.calls.filter((c) => c !== 'VDI.get_sm_config')).toEqual(['VDI.clone', 'VDI.copy']);
  });

  it('at the limit, a failing parent lookup fails the step: no clone from a half-read chain', async () => {
    const f = fakeXapi(chainOf(4), undefined, (m, arg) => {
      if (m === 'VDI.get_by_uuid' && arg === 'u1') throw xapiError('SR_BACKEND_FAILURE_47');
    });
    await expect(cloneWithinChainLimit(f.xapi, 'r0', 'sr', policy)).rejects.toMatchObject({
      code: 'SR_BACKEND_FAILURE_47',
    });
    expect(f.calls).not.toContain('VDI.clone');
  });

  it('passes other clone failures on', async () => {
    const f = fakeXapi(chainOf(1), () => Object.assign(new Error('47'), { code: 'SR_BACKEND_FAILURE_47' }));
    await expect(cloneWithinChainLimit(f.xapi, 'r0', 'sr', policy)).rejects.toMatchObject({
      code: 'SR_BACKEND_FAILURE_47',
    });
  });
});
