/**
 * The chain check against the simulator's SM, with the GC's coalesce forced into the middle of the
 * depth walk (the interleaving behind the chain soak's depth 13 > 12): the walk must count the chain
 * as it is afterwards, so a clone never makes it deeper than maxChainDepth; and a walk that fails
 * otherwise (the soak's injected storage error) must not pass for a short chain.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chainDepth, cloneWithinChainLimit } from '../../../functions/replication/chain.js';
import { Xapi } from '../../../functions/xapi/index.js';
import { type SimPool, startPool } from '../../../sim/index.js';

const MiB = 1 << 20;
let pool: SimPool;
let x: Xapi;
let sr: string;

beforeAll(async () => {
  pool = await startPool({
    name: 'chain-walk',
    srs: [{ name_label: 'Ext', sizeBytes: 4096 * MiB, type: 'ext' }],
    storage: { gcQuietMs: 60_000, coalesceMs: 5 },
  });
  x = await Xapi.connect({
    url: pool.url,
    username: pool.username,
    password: pool.password,
    allowPlainHttp: true,
    taskTimeoutMs: 20_000,
  });
  sr = (await x.call<string[]>('SR.get_by_name_label', 'Ext'))[0]!;
});
afterAll(async () => {
  await x.logout();
  await pool.close();
});

const parentUuid = async (vdi: string) =>
  (await x.call<Record<string, string>>('VDI.get_sm_config', vdi))['vhd-parent'];

/**
 * A disk whose chain is `levels` deep, every base copy shared with a sibling clone (so the GC has
 * nothing to do), and the sibling whose destruction lets the GC coalesce exactly one pair: the
 * disk's own parent into its grandparent.
 */
async function chainWithOneCoalescablePair(levels: number) {
  const disk = await x.call<string>('VDI.create', {
    SR: sr,
    virtual_size: String(16 * MiB),
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  });
  pool.test.writeVdi((await x.getRecord('VDI', disk)).uuid, 0, Buffer.alloc(MiB, 3));
  const siblings: string[] = [];
  for (let i = 1; i < levels; i++) siblings.push(await x.callAsync<string>('VDI.clone', disk));
  // the second-newest sibling hangs from the grandparent: without it, the parent is its only child
  return { disk, freeing: siblings.at(-2)! };
}

/**
 * The client, with the GC's coalesce landing right after the walk read the disk's parent and before
 * it looks that parent up (xapi then answers UUID_INVALID for it).
 */
function coalesceDuringWalk(disk: string, freeing: string) {
  let fired = false;
  const getByUuid = x.getByUuid.bind(x);
  const restore = () => {
    x.getByUuid = getByUuid;
  };
  x.getByUuid = async (cls, uuid) => {
    if (!fired && cls === 'VDI' && uuid === (await parentUuid(disk))) {
      fired = true;
      await x.call('VDI.destroy', freeing);
      await pool.test.settleStorage();
    }
    return getByUuid(cls, uuid);
  };
  return { restore, fired: () => fired };
}

beforeEach(() => pool.test.storage({ gcQuietMs: 60_000 }));

describe('chain depth while the GC coalesces', () => {
  it('walks again after a parent vanished mid-walk and counts the whole remaining chain', async () => {
    const { disk, freeing } = await chainWithOneCoalescablePair(8);
    expect(await chainDepth(x, disk)).toBe(8);
    const hook = coalesceDuringWalk(disk, freeing);
    try {
      expect(await chainDepth(x, disk)).toBe(7);
    } finally {
      hook.restore();
    }
    expect(hook.fired()).toBe(true);
  });

  it('a recovery point at the limit after the coalesce is copied flat, not cloned one deeper', async () => {
    const { disk, freeing } = await chainWithOneCoalescablePair(8);
    const hook = coalesceDuringWalk(disk, freeing);
    let made: Awaited<ReturnType<typeof cloneWithinChainLimit>>;
    try {
      made = await cloneWithinChainLimit(x, disk, sr, { maxDepth: 7, waitMs: 0, pollMs: 1 });
    } finally {
      hook.restore();
    }
    expect(hook.fired()).toBe(true);
    expect(made).toMatchObject({ how: 'copy', sourceDepth: 7 });
    expect(await chainDepth(x, made.ref)).toBe(1);
    expect(await chainDepth(x, disk)).toBe(7);
  });

  it('a storage error on a parent lookup (the soak at seed 7, cycle 17) fails the check: no clone past the bound', async () => {
    const { disk } = await chainWithOneCoalescablePair(4);
    const vdis = () => pool.test.objects('VDI').length;
    const before = vdis();
    pool.test.injectFault({
      method: 'VDI.get_by_uuid',
      count: 1000,
      error: ['SR_BACKEND_FAILURE_47', '', 'The SR is not available', ''],
    });
    try {
      await expect(
        cloneWithinChainLimit(x, disk, sr, { maxDepth: 4, waitMs: 0, pollMs: 1 }),
      ).rejects.toMatchObject({ code: 'SR_BACKEND_FAILURE_47' });
    } finally {
      pool.test.clearFaults();
    }
    expect(vdis()).toBe(before);
    expect(await chainDepth(x, disk)).toBe(4);
  });
});
