/** How the simulated storage behaves in time: SM's constants by default, shorter for tests. */
import type { SimStorageSettings } from '../types.js';

export type StorageSettings = SimStorageSettings;

export const DEFAULT_STORAGE: StorageSettings = {
  chainLimit: 30,
  gcQuietMs: 5 * 60 * 1000,
  coalesceMs: 1000,
  opMs: 0,
  retryMs: 2 * 60 * 60 * 1000,
};

/** SR types whose VDIs are VHD files or VHD-in-LV: snapshots and clones build parent chains. */
const VHD_SR_TYPES = new Set([
  'ext',
  'nfs',
  'file',
  'smb',
  'cifs',
  'lvm',
  'lvmoiscsi',
  'lvmohba',
  'lvmofcoe',
]);
/** LVM-based SR types: thick-provisioned, so a snapshot's base copy costs its allocated size again. */
const THICK_SR_TYPES = new Set(['lvm', 'lvmoiscsi', 'lvmohba', 'lvmofcoe']);

export const hasChains = (srType: unknown): boolean => VHD_SR_TYPES.has(String(srType));
export const isThick = (srType: unknown): boolean => THICK_SR_TYPES.has(String(srType));
