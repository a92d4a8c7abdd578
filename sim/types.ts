/** The simulator's public, in-process API types (the contract other helpers code against). */
import type { GuestBehaviour } from './guest.js';

export type { GuestBehaviour };

export interface SimDiskSpec {
  name_label?: string;
  sizeBytes: number;
  /** SR name_label (default: the pool's first SR) */
  sr?: string;
  userdevice?: string;
  /** sm_config['image-format'] asked for at creation (default: the SR's choice by size and preference) */
  imageFormat?: 'vhd' | 'qcow2';
  /** initial content: written as a guest would */
  data?: { offset: number; length: number; byte?: number; seed?: number }[];
}
export interface SimVmSpec {
  name_label: string;
  uuid?: string;
  power_state?: 'Running' | 'Halted';
  vcpus?: number;
  memoryBytes?: number;
  tags?: string[];
  other_config?: Record<string, string>;
  disks?: SimDiskSpec[];
  vifs?: { network: string; mac?: string; mtu?: number; locking_mode?: string }[];
  /** HVM_boot_params.firmware (default bios); 'uefi' with secureBoot sets platform.secureboot */
  firmware?: 'bios' | 'uefi';
  secureBoot?: boolean;
  /** VM.NVRAM (e.g. EFI-variables: base64 of the variable store) */
  nvram?: Record<string, string>;
  /** VM.bios_strings as stored (no validation, as an import writes them) */
  bios_strings?: Record<string, string>;
  /** one VTPM with these base64 contents */
  vtpm?: { contents: string; is_unique?: boolean };
  has_vendor_device?: boolean;
  /** an empty CD drive at userdevice 3 */
  cdDrive?: boolean;
  xenstore_data?: Record<string, string>;
  /** this many snapshots of the VM made at start (a pool with history, as real ones have) */
  snapshots?: number;
}
export interface SimSrSpec {
  name_label: string;
  sizeBytes: number;
  type?: string;
  /** default false: a local SR, plugged on one host only */
  shared?: boolean;
  /** the host (index) a local SR is on; default 0 (the master) */
  host?: number;
  /** PBD device_config['preferred-image-formats'], e.g. "qcow2,vhd" (SM's default: "vhd,qcow2") */
  preferredImageFormats?: string;
}
export interface SimPoolSpec {
  name: string;
  /** default 1 */
  hosts?: number;
  /** default 'root' */
  username?: string;
  /** generated if absent */
  password?: string;
  srs?: SimSrSpec[];
  networks?: { name_label: string }[];
  vms?: SimVmSpec[];
  /** https when set */
  tls?: { cert: string; key: string };
  /** sim.* RPC namespace; default true */
  testApi?: boolean;
  /** default 127.0.0.1 */
  bindAddress?: string;
  /** pool.restrictions.restrict_vtpm = "true": VTPM.create fails with FEATURE_RESTRICTED (unlicensed) */
  restrictVtpm?: boolean;
  /** pool.restrictions.restrict_cbt = "true": VDI.enable_cbt fails with LICENCE_RESTRICTION ["CBT"] (unlicensed) */
  restrictCbt?: boolean;
  /** storage timing (GC quiet period, coalesce and operation durations, xapi's retry bound, chain limit) */
  storage?: Partial<SimStorageSettings>;
  /** RAM of each host (default 256 GiB); VM.start needs the VM's memory_static_max free. */
  hostMemoryBytes?: number;
  /** What booted guests do (default: the agent reports after 200 ms); later entries win. */
  guests?: GuestBehaviour[];
  /** Bandwidth: each data connection's cap and each host's total cap, bytes/s (default unlimited). */
  limits?: { streamBytesPerSecond?: number; hostBytesPerSecond?: number };
}
/** Defaults are SM's and xapi's: chain limit 30, GC quiet period 5 min, coalesce 1 s, retry 2 h. */
export interface SimStorageSettings {
  /** deepest VHD chain (counting the leaf) a snapshot or clone may start from: SM's MAX_CHAIN_SIZE */
  chainLimit: number;
  /** the garbage collector's quiet period before its first round (SM: 5 minutes) */
  gcQuietMs: number;
  /** how long one coalesce (one parent/child pair) takes */
  coalesceMs: number;
  /** how long each VDI create / destroy / snapshot / clone / copy holds its SR or VDI */
  opMs: number;
  /** how long xapi retries an operation OTHER_OPERATION_IN_PROGRESS blocks (Policy.standard: 2 h) */
  retryMs: number;
}
export interface SimTestApi {
  /** as a running guest writes (marks blocks dirty) */
  writeVdi(vdiUuid: string, offset: number, data: Buffer): void;
  readVdi(vdiUuid: string, offset: number, length: number): Buffer;
  /** sha256 hex of the VDI's content, canonical: equal for equal content whatever is allocated */
  hashVdi(vdiUuid: string): string;
  /** Fail calls of `method` ('VDI.clone' also matches 'Async.VDI.clone'): the nth matching call (1-based,
   *  default 1) and the `count-1` after it (default 1) fail with ErrorDescription `error`. */
  injectFault(f: { method: string; nth?: number; count?: number; error: string[] }): void;
  /** Cut the nth (default 1) export_raw_vdi / import_raw_vdi stream, or NBD connection (counted at its
   *  first read request; the connection drops in a read reply), and the `count-1` after it (default 1),
   *  after `afterBytes` body (read data) bytes. */
  cutStream(f: {
    path: 'export_raw_vdi' | 'import_raw_vdi' | 'nbd';
    afterBytes: number;
    nth?: number;
    count?: number;
  }): void;
  /** cap of each data connection (HTTP export/import and NBD), bytes/s; undefined = unlimited */
  throttle(bytesPerSecond: number | undefined): void;
  /** cap of each host's total over all its data connections, bytes/s; undefined = unlimited */
  hostThrottle(bytesPerSecond: number | undefined): void;
  /** added to every RPC call */
  latency(ms: number): void;
  /** every live session becomes SESSION_INVALID */
  expireSessions(): void;
  /** the old master now answers HOST_IS_SLAVE */
  switchMaster(hostIndex: number): void;
  clearFaults(): void;
  /** RPC method names called so far, in order (wire names, e.g. 'Async.VM.snapshot'; sim.* excluded) */
  calls(): string[];
  /** Body bytes this pool's export_raw_vdi sent so far (all exports, counted at the server) */
  exportedBytes(): number;
  /** Body bytes this pool's import_raw_vdi received so far (all imports, chunk headers included) */
  importedBytes(): number;
  /** change storage timing from now on */
  storage(settings: Partial<SimStorageSettings>): void;
  /** run every SR's garbage collector now (no quiet period) until no work is left */
  settleStorage(): Promise<void>;
  /** all live objects of a class as [ref, record] (read-only copies) — for leak checks in tests */
  objects(
    cls: 'VM' | 'VDI' | 'VBD' | 'VIF' | 'VTPM' | 'network' | 'task' | 'SR' | 'session',
  ): [string, Record<string, unknown>][];
  /** Adds a guest rule (later rules win): how VMs whose name contains `nameIncludes` boot. */
  guest(b: GuestBehaviour): void;
  /** a VTPM's contents (the secret get_record never shows) */
  vtpmContents(vtpmRef: string): string;
}
export interface SimPool {
  name: string;
  username: string;
  password: string;
  /** the master's base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** address = "127.0.0.1:41234" (host.address carries the port; clients build http(s)://<address>) */
  hosts: { uuid: string; address: string; url: string }[];
  test: SimTestApi;
  close(): Promise<void>;
}
