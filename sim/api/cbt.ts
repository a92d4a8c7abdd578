/** CBT and NBD messages (docs/xapi.md, "CBT and NBD"): enable/disable, changed blocks, NBD info, data_destroy. */

import { cbtUnrelated, dropCbtLog, startCbtLog } from '../cbt-log.js';
import { BLOCK_SIZE, type Block, CBT_GRAIN, changedRegions, Disk } from '../disk.js';
import { XapiError } from '../errors.js';
import { nbdInfo } from '../nbd-hosts.js';
import type { PoolState } from '../state.js';
import { self } from './implicit.js';
import { p, type Registry } from './registry.js';
import { assertNotInUse } from './vdi.js';

/** What a VDI's changed-block log can be compared by: its live generations, or those kept by data_destroy. */
function cbtGenerations(pool: PoolState, vdi: string): Map<number, Block> {
  return pool.cbtMetadata.get(vdi) ?? pool.disk(vdi).generations();
}

/**
 * `VDI.enable_cbt` needs the pool's CBT feature (xapi: `Pool_features.assert_enabled ~f:Features.CBT`,
 * LICENCE_RESTRICTION ["CBT"] when `restrictions.restrict_cbt` is "true"); both refuse snapshots and
 * types other than user/system.
 */
function registerCbtSwitches(reg: Registry): void {
  for (const [name, on] of [
    ['enable_cbt', true],
    ['disable_cbt', false],
  ] as const) {
    reg.add({
      name: `VDI.${name}`,
      params: [p('self', 'ref')],
      handler: ({ pool }, [vdi]) => {
        const ref = self(pool, 'VDI', vdi);
        const rec = pool.db.get('VDI', ref);
        const restrictions = pool.db.get('pool', pool.poolRef).restrictions as Record<string, string>;
        if (on && restrictions.restrict_cbt === 'true') throw new XapiError('LICENCE_RESTRICTION', ['CBT']);
        if (rec.is_a_snapshot === true)
          throw new XapiError('OPERATION_NOT_ALLOWED', [`VDI is a snapshot: ${ref}`]);
        if (rec.type !== 'user' && rec.type !== 'system')
          throw new XapiError('VDI_INCOMPATIBLE_TYPE', [ref, String(rec.type)]);
        if (on) startCbtLog(pool, ref);
        else dropCbtLog(pool, ref);
        pool.db.set('VDI', ref, 'cbt_enabled', on);
        return undefined;
      },
    });
  }
}

/**
 * VDI.list_changed_blocks returns base64 of one bit per 64 KiB, MSB first. Every write marks the
 * 64 KiB regions it touches on the block generation it lands in, so the bitmap is exact at 64 KiB,
 * as tapdisk logs it. SM answers only along one CBT log chain, from an older log to a newer one
 * (cbt-log.ts); its refusal is CBTChangedBlocksError (errno 460), whose "description [opterr=…]"
 * xapi passes on as `SR_BACKEND_FAILURE_460 ["", reason, stderr]` (sm_exec.ml).
 */
export function registerCbt(reg: Registry): void {
  registerCbtSwitches(reg);
  reg.add({
    name: 'VDI.list_changed_blocks',
    params: [p('vdi_from', 'ref'), p('vdi_to', 'ref')],
    handler: ({ pool }, [from, to]) => {
      const a = self(pool, 'VDI', from);
      const b = self(pool, 'VDI', to);
      const ra = pool.db.get('VDI', a);
      const rb = pool.db.get('VDI', b);
      const unrelated = ra.SR !== rb.SR ? 'Source and target VDI are unrelated' : cbtUnrelated(pool, a, b);
      if (unrelated)
        throw new XapiError('SR_BACKEND_FAILURE_460', [
          '',
          `Failed to calculate changed blocks for given VDIs. [opterr=${unrelated}]`,
          '',
        ]);
      for (const v of rb.VBDs as string[]) {
        const vbd = pool.db.find('VBD', v);
        const vm = vbd && pool.db.find('VM', vbd.VM as string);
        if (vbd?.currently_attached === true && vm?.is_a_snapshot !== true)
          throw new XapiError('VDI_IN_USE', [b, 'list_changed_blocks']);
      }
      const ga = cbtGenerations(pool, a);
      const gb = cbtGenerations(pool, b);
      const size = Number(rb.virtual_size);
      const bits = Math.ceil(size / CBT_GRAIN);
      const out = Buffer.alloc(Math.ceil(bits / 8));
      const perBlock = BLOCK_SIZE / CBT_GRAIN;
      for (const i of new Set([...ga.keys(), ...gb.keys()])) {
        const mask = changedRegions(ga.get(i), gb.get(i));
        for (let k = 0; k < perBlock; k++) {
          const bit = i * perBlock + k;
          if (bit < bits && mask & (1 << k)) out[bit >> 3]! |= 0x80 >> (bit & 7);
        }
      }
      return out.toString('base64');
    },
  });
  reg.add({
    name: 'VDI.get_nbd_info',
    params: [p('self', 'ref')],
    handler: async ({ pool, session }, [vdi]) => {
      const ref = self(pool, 'VDI', vdi);
      if (!pool.nbd) return [];
      return nbdInfo(pool, pool.nbd, ref, session);
    },
  });
  reg.add({
    name: 'VDI.data_destroy',
    params: [p('self', 'ref')],
    async: true,
    handler: ({ pool }, [vdi]) => {
      const ref = self(pool, 'VDI', vdi);
      const rec = pool.db.get('VDI', ref);
      if (rec.is_a_snapshot !== true)
        throw new XapiError('OPERATION_NOT_ALLOWED', [`VDI is not a snapshot: ${ref}`]);
      if (rec.cbt_enabled !== true) throw new XapiError('VDI_NO_CBT_METADATA', [ref]);
      assertNotInUse(pool, ref, 'data_destroy');
      const d = pool.disks.get(ref);
      if (d) {
        // frozen: a disk still sharing these generations copies on its next write instead of
        // writing in place, so the kept generations keep meaning "the content at this snapshot"
        for (const blk of d.blocks.values()) blk.frozen = true;
        pool.cbtMetadata.set(ref, d.generations());
        d.release();
        pool.disks.set(ref, new Disk(d.store, d.size));
      }
      pool.db.set('VDI', ref, 'type', 'cbt_metadata');
      pool.syncVdi(ref);
      return undefined;
    },
  });
}
