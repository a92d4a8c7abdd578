/**
 * How each disk of a reverse sync travels, pure over what the failback found. The changed 64 KiB
 * extents over NBD where CBT can list them (`VDI.list_changed_blocks` from the copy's CBT baseline
 * or its previous reverse snapshot to the new one); else a VHD differencing export against the
 * reverse disk's base; a qcow2 disk has no such export (docs/xapi.md, "qcow2"), so
 * it travels whole — over NBD (its allocated clusters from a qcow2 export's tables) where NBD
 * answers, else as a full VHD export up to VHD's 2040 GiB — into a new empty disk, never over a
 * clone holding other data.
 */
import { XcrPermanentError } from '../errors.js';
import { type ImageFormat, MAX_VHD_SIZE } from '../image-format.js';

export interface ReverseFacts {
  userdevice: string;
  format: ImageFormat;
  virtualSize: number;
  /** The reverse disk holds the base's content (a clone of S, or what the previous sync sent):
   *  only the differences need to travel. False: the base is gone, the disk is new and empty. */
  delta: boolean;
  /** Why CBT cannot list the copy's changes since that base, undefined when it can. */
  cbt: string | undefined;
  /** Why NBD on the DR pool is not usable, undefined when it is (not probed: say why). */
  nbd: string | undefined;
  /** Part of this disk already went over NBD in this run (a cursor): it must go on that way. */
  resuming: boolean;
}

export type ReverseTransfer = 'cbt-delta' | 'cbt-full' | 'vhd-delta' | 'vhd-full';

export interface ReverseChoice {
  transfer: ReverseTransfer;
  /** The disk must go into a new empty disk although the reverse disk could be a clone of the base. */
  freshDisk: boolean;
  reason: string;
  /** Said to the operator (a whole disk travels where a delta was possible). */
  warning?: string;
}

export function chooseReverse(f: ReverseFacts): ReverseChoice {
  const choice = choose(f);
  if (f.resuming && !choice.transfer.startsWith('cbt'))
    throw new XcrPermanentError(
      'CBT_UNAVAILABLE',
      `disk ${f.userdevice} was being sent over NBD by this failback, which can no longer go on that way (${f.nbd ?? f.cbt}); fix that and run the failback again with the same run id`,
    );
  return choice;
}

function choose(f: ReverseFacts): ReverseChoice {
  const disk = `disk ${f.userdevice}`;
  if (f.delta && !f.cbt && !f.nbd)
    return {
      transfer: 'cbt-delta',
      freshDisk: false,
      reason: `${disk}: the changed blocks CBT lists, over NBD`,
    };
  if (f.delta && f.format === 'vhd')
    return {
      transfer: 'vhd-delta',
      freshDisk: false,
      reason: `${disk}: a VHD differencing export (${f.cbt ?? f.nbd})`,
    };
  const why = f.delta
    ? `${disk} is qcow2, which has no VHD differencing export, and ${f.cbt ?? f.nbd}: it is sent whole into a new disk`
    : `${disk}: the base is gone, the whole disk travels`;
  const warning = f.delta ? why : undefined;
  const whole = (transfer: ReverseTransfer, how: string): ReverseChoice => ({
    transfer,
    freshDisk: f.delta,
    reason: `${why} (${how})`,
    ...(warning ? { warning: `${warning} (${how})` } : {}),
  });
  if (f.format === 'qcow2' && !f.nbd) return whole('cbt-full', 'its allocated clusters over NBD');
  if (f.virtualSize <= MAX_VHD_SIZE) return whole('vhd-full', 'a full VHD export');
  throw new XcrPermanentError(
    'CBT_UNAVAILABLE',
    `${why}, but it is larger than VHD's 2040 GiB and NBD on the DR pool is not usable (${f.nbd}): give a network of the DR pool the purpose nbd or insecure_nbd and run the failback again`,
  );
}
