import { isXapiError, type Xapi } from '../xapi/index.js';
import { XcrPermanentError } from './errors.js';

const MiB = 2 ** 20;

/**
 * A full destination SR (`SR_BACKEND_FAILURE_44`, "There is insufficient space"), said with the SR's
 * name and its free space against what the disk needs. Any other error is returned unchanged.
 */
export async function explainNoSpace(
  xapi: Xapi,
  srRef: string,
  needed: number,
  err: unknown,
): Promise<unknown> {
  if (!isXapiError(err, 'SR_BACKEND_FAILURE_44')) return err;
  try {
    const sr = await xapi.getRecord('SR', srRef);
    const free = Math.max(0, sr.physical_size - sr.physical_utilisation);
    return new XcrPermanentError(
      err.code,
      `${err.message.slice(err.code.length).trim()}: SR "${sr.name_label}" (${sr.uuid}) has ` +
        `${Math.floor(free / MiB)} MiB free; this disk needs up to ${Math.ceil(needed / MiB)} MiB. ` +
        'Free space on the SR or choose another destination sr; the previous recovery point is unchanged',
    );
  } catch {
    return err;
  }
}
