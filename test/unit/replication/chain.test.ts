/** Destination chain checks over a fake XAPI: depth, the bounded wait, the flat copy, 109. */
import { describe, expect, it } from 'vitest';
import { chainDepth, cloneWithinChainLimit } from '../../../functions/replication/chain.js';
import type { Xapi } from '../../../functions/xapi/index.js';

/** VDIs by ref: uuid and parent uuid. */
function fakeXapi(vdis: Record<string, { uuid: string; parent?: string }>, onClone?: () => unknown) {
  const calls: string[] = [];
  const xapi = {
    async call(method: string, ref: string) {
      calls.push(method);
      if (method !== 'VDI.get_sm_config') throw new Error(method);
      const parent = vdis[ref]!.parent;
      return parent ? { 'vhd-parent': parent } : {};
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
      const hit = Object.entries(vdis).find(([, v]) => v.uuid === uuid);
      if (!hit) throw Object.assign(new Error('UUID_INVALID'), { code: 'UUID_INVALID' });
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

describe('chainDepth', () => {
  it('counts the disk and every parent; a vanished parent still counts; a cycle stops at the bound', async () => {
    expect(await chainDepth(fakeXapi(chainOf(1)).xapi, 'r0')).toBe(1);
    expect(await chainDepth(fakeXapi(chainOf(5)).xapi, 'r0')).toBe(5);
    expect(await chainDepth(fakeXapi({ a: { uuid: 'ua', parent: 'gone' } }).xapi, 'a')).toBe(2);
    const cyclic = { a: { uuid: 'ua', parent: 'ub' }, b: { uuid: 'ub', parent: 'ua' } };
    expect(await chainDepth(fakeXapi(cyclic).xapi, 'a')).toBe(33);
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

  it('passes other clone failures on', async () => {
    const f = fakeXapi(chainOf(1), () => Object.assign(new Error('47'), { code: 'SR_BACKEND_FAILURE_47' }));
    await expect(cloneWithinChainLimit(f.xapi, 'r0', 'sr', policy)).rejects.toMatchObject({
      code: 'SR_BACKEND_FAILURE_47',
    });
  });
});
