/**
 * Wires sim/nbd's xapi-nbd-like server into a pool: one NBD listener per host, started on demand by
 * VDI.get_nbd_info in the mode the networks' `purpose` selects (nbd → forced TLS, insecure_nbd →
 * no TLS; both or neither → no usable server, as xapi-nbd refuses then).
 */
import { X509Certificate } from 'node:crypto';
import { BLOCK_SIZE, type Disk } from './disk.js';
import { XapiError } from './errors.js';
import { parseXapiExportName } from './nbd/export-name.js';
import { type NbdServerHandle, startNbdServer } from './nbd/server.js';
import { Pacer } from './pace.js';
import type { NbdListeners, NbdMode, PoolState } from './state.js';
import type { XRecord } from './wire/values.js';

interface Running {
  mode: NbdMode;
  handle: Promise<NbdServerHandle>;
}

export class NbdHosts implements NbdListeners {
  private readonly running = new Map<number, Running>();
  constructor(
    private readonly pool: PoolState,
    private readonly bind: string,
    private readonly tls: { cert: string; key: string } | undefined,
  ) {}

  mode(): NbdMode | undefined {
    const purposes = new Set<string>();
    for (const [, n] of this.pool.db.all('network')) for (const p of n.purpose as string[]) purposes.add(p);
    const nbd = purposes.has('nbd');
    const insecure = purposes.has('insecure_nbd');
    if (nbd === insecure) return undefined;
    if (nbd && !this.tls) return undefined;
    return nbd ? 'forced-tls' : 'no-tls';
  }

  async port(hostIndex: number, mode: NbdMode): Promise<number> {
    let r = this.running.get(hostIndex);
    if (r && r.mode !== mode) {
      await (await r.handle).close();
      r = undefined;
    }
    if (!r) {
      r = {
        mode,
        handle: startNbdServer({
          host: this.bind,
          mode,
          ...(mode === 'forced-tls' && this.tls ? { tls: this.tls } : {}),
          resolveExport: (name) => this.resolve(name),
          pacer: () => new Pacer(() => this.pool.faults.bytesPerSecond, this.pool.faults.host(hostIndex)),
          cutAfter: () => this.pool.faults.cutFor('nbd'),
        }),
      };
      this.running.set(hostIndex, r);
    }
    return (await r.handle).port;
  }

  private resolve(name: string): { size: number; read(o: number, l: number): Buffer } | undefined {
    const parsed = parseXapiExportName(name);
    if (!parsed || !this.pool.validSession(parsed.sessionId)) return undefined;
    let ref: string;
    try {
      ref = this.pool.db.byUuid('VDI', parsed.vdiUuid);
    } catch {
      return undefined;
    }
    if (this.pool.db.get('VDI', ref).type === 'cbt_metadata') return undefined;
    const disk = this.pool.disk(ref);
    return { size: disk.size, read: (o, l) => readPinned(disk, o, l) };
  }

  async close(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    await Promise.all(all.map(async (r) => (await r.handle.catch(() => undefined))?.close()));
  }
}

/** A DNS name from the certificate (strict SAN names before wildcards, then CN), else the hostname. */
export function certificateSubject(pem: string | undefined, fallback: string): string {
  if (!pem) return fallback;
  try {
    const x = new X509Certificate(pem);
    const dns = (x.subjectAltName ?? '')
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4));
    const strict = dns.find((d) => !d.includes('*'));
    if (strict ?? dns[0]) return (strict ?? dns[0])!;
    const cn = /CN=([^\n,]+)/.exec(x.subject)?.[1];
    return cn ?? fallback;
  } catch {
    return fallback;
  }
}

/** VDI.get_nbd_info: one record per host that can see the VDI's SR (docs/xapi.md, "CBT and NBD"). */
export async function nbdInfo(
  pool: PoolState,
  nbd: NbdListeners,
  vdi: string,
  session: string,
): Promise<XRecord[]> {
  const rec = pool.db.get('VDI', vdi);
  if (rec.type === 'cbt_metadata') throw new XapiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'cbt_metadata']);
  const mode = nbd.mode();
  if (!mode) return [];
  const sr = pool.db.get('SR', rec.SR as string);
  const out: XRecord[] = [];
  for (const pbd of sr.PBDs as string[]) {
    const p = pool.db.get('PBD', pbd);
    if (p.currently_attached !== true) continue;
    const hostIndex = pool.hosts.findIndex((h) => h.ref === p.host);
    if (hostIndex < 0) continue;
    const host = pool.db.get('host', pool.hosts[hostIndex]!.ref);
    const address = String(host.address)
      .replace(/:\d+$/, '')
      .replace(/^\[(.*)\]$/, '$1');
    out.push({
      address,
      port: await nbd.port(hostIndex, mode),
      exportname: `/${rec.uuid as string}?session_id=${session}`,
      cert: pool.certificate ?? '',
      subject: certificateSubject(pool.certificate, String(host.hostname)),
    });
  }
  return out;
}

/**
 * A read inside one 2 MiB block is a view of the block's pinned buffer (never written in place once
 * handed out, see Disk.blockData), as the VHD export sends them: a profile of the NBD server showed
 * the per-request allocation and copy of Disk.read, and the garbage it made, as most of its CPU.
 * Reads across blocks are copied.
 */
export function readPinned(disk: Disk, offset: number, length: number): Buffer {
  const i = Math.floor(offset / BLOCK_SIZE);
  const within = offset - i * BLOCK_SIZE;
  if (within + length > BLOCK_SIZE) return disk.read(offset, length);
  return disk.blockData(i, true).subarray(within, within + length);
}
