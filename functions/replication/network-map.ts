/**
 * Which destination network each source network's VIFs land on.
 *
 * - `destination.networkMap` given: only its entries apply. A source network matches the entry keyed
 *   by its uuid, else by its name_label, else `"*"`; anything else is unmapped (an error, never a guess).
 * - `destination.network` is the shorthand `{ "*": <network> }`.
 * - Neither: Xen Orchestra's rule — the destination network with the same uuid, else the one with
 *   the same name_label, else the pool's default network.
 *
 * The default network: Xen Orchestra takes a network that has a physical interface (any of them, in
 * object order); xapi itself has no such notion. xcr makes it deterministic: among the networks
 * with PIFs (all networks when none has one, e.g. a pool without physical NICs modelled) that are not
 * xapi's host-internal management network, the first by name_label.
 */
import type { ObjectSelector } from '../config/schema.js';

export interface NetworkInfo {
  ref: string;
  uuid: string;
  name_label: string;
  PIFs?: string[];
  other_config?: Record<string, string>;
}

export interface NetworkResolution {
  /** source network ref → destination network ref */
  mapped: Map<string, string>;
  /** source networks that map to nothing */
  unmapped: NetworkInfo[];
  /** map entries whose destination does not name exactly one network */
  badEntries: { key: string; value: string; problem: string }[];
}

/** The map a job's destination describes; undefined = Xen Orchestra's default rule. */
export function jobNetworkMap(dest: {
  network?: ObjectSelector | undefined;
  networkMap?: Record<string, string> | undefined;
}): Record<string, string> | undefined {
  if (dest.networkMap) return dest.networkMap;
  if (dest.network) return { '*': 'uuid' in dest.network ? dest.network.uuid : dest.network.name };
  return undefined;
}

export function defaultNetwork(dests: NetworkInfo[]): NetworkInfo | undefined {
  const usable = dests.filter((n) => n.other_config?.is_host_internal_management_network !== 'true');
  const withPifs = usable.filter((n) => (n.PIFs ?? []).length > 0);
  const pool = withPifs.length > 0 ? withPifs : usable;
  return [...pool].sort(
    (a, b) => a.name_label.localeCompare(b.name_label) || a.uuid.localeCompare(b.uuid),
  )[0];
}

function byUuidOrName(dests: NetworkInfo[], value: string): NetworkInfo[] {
  const byUuid = dests.filter((n) => n.uuid === value);
  return byUuid.length > 0 ? byUuid : dests.filter((n) => n.name_label === value);
}

export function resolveNetworks(
  sources: NetworkInfo[],
  dests: NetworkInfo[],
  map: Record<string, string> | undefined,
): NetworkResolution {
  const out: NetworkResolution = { mapped: new Map(), unmapped: [], badEntries: [] };
  if (map) {
    const target = new Map<string, string>();
    for (const [key, value] of Object.entries(map)) {
      const found = byUuidOrName(dests, value);
      if (found.length === 1) target.set(key, found[0]!.ref);
      else
        out.badEntries.push({
          key,
          value,
          problem:
            found.length === 0
              ? `no destination network has uuid or name "${value}" (available: ${dests.map((d) => `"${d.name_label}"`).join(', ') || 'none'})`
              : `${found.length} destination networks are named "${value}"; give its uuid`,
        });
    }
    for (const src of sources) {
      const key = [src.uuid, src.name_label, '*'].find((k) => k in map);
      if (key === undefined) out.unmapped.push(src);
      else if (target.has(key)) out.mapped.set(src.ref, target.get(key)!);
    }
    return out;
  }
  const fallback = defaultNetwork(dests);
  for (const src of sources) {
    const sameUuid = dests.find((d) => d.uuid === src.uuid);
    const sameName = dests.filter((d) => d.name_label === src.name_label);
    const pick = sameUuid ?? (sameName.length === 1 ? sameName[0] : undefined) ?? fallback;
    if (pick) out.mapped.set(src.ref, pick.ref);
    else out.unmapped.push(src);
  }
  return out;
}

/** Several source networks the job's map sends to one destination network: its VIFs go back to `pick`. */
export interface SharedLanding {
  dest: string;
  /** Every source network landing there, by name (as many as the pool has with a "*" map). */
  sources: string[];
  pick: string;
}

/**
 * The way back, for a VM made on the source pool from a VM at the destination (a failback whose
 * original VM is gone): each destination network in `used` goes to the source network `forward`
 * (the job's map, resolved) sends there; of several, the one named like the destination network,
 * else the first by name (`shared`); to none is a problem naming the job's map.
 */
export function reverseNetworks(
  forward: Map<string, string>,
  sources: NetworkInfo[],
  dests: NetworkInfo[],
  used: string[],
): { mapped: Map<string, string>; shared: SharedLanding[]; problems: string[] } {
  const out = { mapped: new Map<string, string>(), shared: [] as SharedLanding[], problems: [] as string[] };
  for (const ref of new Set(used)) {
    const dest = dests.find((d) => d.ref === ref);
    const name = dest?.name_label ?? ref;
    const back = sources
      .filter((s) => forward.get(s.ref) === ref)
      .sort((a, b) => a.name_label.localeCompare(b.name_label) || a.uuid.localeCompare(b.uuid));
    const pick = back.find((s) => s.name_label === name) ?? back[0];
    if (!pick) {
      out.problems.push(
        `no source network maps to destination network "${name}" under the job's destination.network/networkMap, so a VIF on it has no way back; map a source network to "${name}"`,
      );
      continue;
    }
    if (back.length > 1 && pick.name_label !== name)
      out.shared.push({ dest: name, sources: back.map((s) => s.name_label), pick: pick.name_label });
    out.mapped.set(ref, pick.ref);
  }
  return out;
}

/** The note of a shared landing, naming the source networks `shown` keeps (a bounded list of them). */
export function sharedLandingNote(
  s: SharedLanding,
  shown: { count: number; items: readonly string[] },
): string {
  const names = shown.items.map((n) => `"${n}"`).join(', ');
  const more = shown.count - shown.items.length;
  const where =
    more > 0
      ? `${shown.count} source networks land (${names} and ${more} more, named in the log)`
      : `${names} land`;
  return `destination network "${s.dest}" is where ${where}: its VIFs go back to "${s.pick}"`;
}

/** One line per problem, naming the config field and the fix (`shorthand`: destination.network). */
export function networkProblems(res: NetworkResolution, field: string, shorthand = false): string[] {
  return [
    ...res.badEntries.map((e) => `${shorthand ? field : `${field}["${e.key}"]`}: ${e.problem}`),
    ...res.unmapped.map(
      (n) =>
        `source network "${n.name_label}" (${n.uuid}) maps to no destination network; add "${n.name_label}" or "*" to ${field}`,
    ),
  ];
}
