import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../functions/config/load.js';
import { listed, MAX_LISTED } from '../../../functions/replication/failover/contract.js';
import { ITEMS_PER_LOG_LINE, logAll } from '../../../functions/replication/failover/pools.js';
import {
  defaultNetwork,
  jobNetworkMap,
  type NetworkInfo,
  networkProblems,
  resolveNetworks,
  reverseNetworks,
  sharedLandingNote,
} from '../../../functions/replication/network-map.js';

const net = (ref: string, name_label: string, extra: Partial<NetworkInfo> = {}): NetworkInfo => ({
  ref,
  uuid: `00000000-0000-4000-8000-${ref.padStart(12, '0')}`,
  name_label,
  ...extra,
});
const lan = net('1', 'LAN');
const storage = net('2', 'Storage');
const dr = [
  net('11', 'DR LAN'),
  net('12', 'LAN'),
  net('13', 'DR storage'),
  { ...net('14', 'shared'), uuid: storage.uuid },
];

describe('resolveNetworks', () => {
  it.each([
    ['no map: same uuid, else same name', undefined, { '1': '12', '2': '14' }, []],
    [
      'map: uuid beats name beats *',
      { [lan.uuid]: 'DR storage', LAN: 'DR LAN', '*': 'DR LAN' },
      { '1': '13', '2': '11' },
      [],
    ],
    ['map by name only: the rest is unmapped', { LAN: 'DR LAN' }, { '1': '11' }, ['2']],
    ['* is an explicit catch-all', { '*': dr[2]!.uuid }, { '1': '13', '2': '13' }, []],
  ] as const)('%s', (_name, map, mapped, unmapped) => {
    const r = resolveNetworks([lan, storage], dr, map as Record<string, string> | undefined);
    expect(Object.fromEntries(r.mapped)).toEqual(mapped);
    expect(r.unmapped.map((n) => n.ref)).toEqual(unmapped);
    expect(r.badEntries).toEqual([]);
  });

  it('names map entries whose destination is missing or ambiguous', () => {
    const r = resolveNetworks([lan], [...dr, net('15', 'DR LAN')], { LAN: 'nope', '*': 'DR LAN' });
    expect(r.badEntries.map((e) => [e.key, e.problem])).toEqual([
      ['LAN', expect.stringContaining('no destination network has uuid or name "nope"')],
      ['*', '2 destination networks are named "DR LAN"; give its uuid'],
    ]);
    expect(networkProblems(r, 'destination.networkMap')[0]).toMatch(/^destination\.networkMap\["LAN"\]: /);
    const short = resolveNetworks([lan], dr, jobNetworkMap({ network: { name: 'nope' } }));
    expect(networkProblems(short, 'destination.network', true)).toEqual([
      expect.stringMatching(/^destination\.network: no destination network has uuid or name "nope"/),
    ]);
  });

  it('without a map falls back to the default network: PIF-backed, not host-internal, first by name', () => {
    const dests = [
      net('21', 'A internal', { other_config: { is_host_internal_management_network: 'true' } }),
      net('22', 'Z physical', { PIFs: ['OpaqueRef:p'] }),
      net('23', 'B private'),
    ];
    expect(defaultNetwork(dests)?.ref).toBe('22');
    expect(defaultNetwork(dests.filter((d) => d.ref !== '22'))?.ref).toBe('23');
    expect(Object.fromEntries(resolveNetworks([storage], dests, undefined).mapped)).toEqual({ '2': '22' });
    expect(resolveNetworks([storage], [], undefined).unmapped).toEqual([storage]);
  });
});

describe('destination.network / networkMap in the job config', () => {
  const config = (destination: object) => ({
    version: 1,
    pools: {
      a: { url: 'http://a', password: { env: 'A' }, allowPlainHttp: true },
      b: { url: 'http://b', password: { env: 'B' }, allowPlainHttp: true },
    },
    jobs: [
      {
        id: 'j',
        source: { pool: 'a' },
        destination: { pool: 'b', sr: { name: 'sr' }, ...destination },
        vms: { tag: 't' },
        schedule: { rate: '15 minutes' },
      },
    ],
  });
  it('network is the shorthand for { "*": network }', () => {
    expect(jobNetworkMap(parseConfig(config({ network: { name: 'DR LAN' } })).jobs[0]!.destination)).toEqual({
      '*': 'DR LAN',
    });
    expect(jobNetworkMap(parseConfig(config({})).jobs[0]!.destination)).toBeUndefined();
    expect(
      jobNetworkMap(parseConfig(config({ networkMap: { LAN: 'DR LAN' } })).jobs[0]!.destination),
    ).toEqual({ LAN: 'DR LAN' });
  });
  it('refuses both at once and an empty map, naming the field', () => {
    expect(() => parseConfig(config({ network: { name: 'x' }, networkMap: { '*': 'y' } }))).toThrow(
      /networkMap.*either destination\.network/s,
    );
    expect(() => parseConfig(config({ networkMap: {} }))).toThrow(/networkMap.*at least one network/s);
  });
});

describe('reverseNetworks (a failback that makes a new VM on the source pool)', () => {
  const a = [lan, storage, net('3', 'Backup')];
  const b = [net('11', 'DR LAN'), net('12', 'Storage')];
  it('each destination network goes back to the source network the map sends there; of several, the same name, else the first by name (noted)', () => {
    const forward = new Map([
      ['1', '11'],
      ['3', '11'],
      ['2', '12'],
    ]);
    const back = reverseNetworks(forward, a, b, ['11', '12', '11']);
    expect([...back.mapped]).toEqual([
      ['11', '3'],
      ['12', '2'],
    ]);
    expect(back.shared).toEqual([{ dest: 'DR LAN', sources: ['Backup', 'LAN'], pick: 'Backup' }]);
    expect(back.shared.map((x) => sharedLandingNote(x, listed(x.sources)))).toEqual([
      'destination network "DR LAN" is where "Backup", "LAN" land: its VIFs go back to "Backup"',
    ]);
    expect(back.problems).toEqual([]);
  });
  it('a destination network no source network maps to is a problem naming the map', () => {
    const back = reverseNetworks(new Map([['1', '11']]), a, b, ['12']);
    expect(back.mapped.size).toBe(0);
    expect(back.problems[0]).toMatch(/no source network maps to destination network "Storage" .*networkMap/);
  });

  it('a "*" map over a pool of many networks: one note naming MAX_LISTED of them with the count, every one in the log in lines of ITEMS_PER_LOG_LINE', () => {
    const pool = Array.from({ length: 1234 }, (_, i) =>
      net(String(100 + i), `vlan ${String(i).padStart(4, '0')}`),
    );
    const forward = new Map(pool.map((n) => [n.ref, '11']));
    const back = reverseNetworks(forward, pool, b, ['11', '11', '11']);
    expect([...back.mapped]).toEqual([['11', '100']]);
    expect(back.shared).toHaveLength(1);
    const note = sharedLandingNote(back.shared[0]!, listed(back.shared[0]!.sources));
    const first = pool.slice(0, MAX_LISTED).map((n) => `"${n.name_label}"`);
    expect(note).toBe(
      `destination network "DR LAN" is where 1234 source networks land (${first.join(', ')} and ${1234 - MAX_LISTED} more, named in the log): its VIFs go back to "vlan 0000"`,
    );
    expect(note.length).toBeLessThan(1000);
    const lines: Record<string, unknown>[] = [];
    const logger = {
      info() {},
      error() {},
      warn: (_: string, f?: Record<string, unknown>) => lines.push(f!),
    };
    logAll(
      { logger },
      'source networks that land on one destination network',
      'sources',
      back.shared[0]!.sources,
      {
        destination: 'DR LAN',
      },
    );
    expect(
      lines.map((l) => [(l.sources as string[]).length, l.part, l.parts, l.count, l.destination]),
    ).toEqual([
      [ITEMS_PER_LOG_LINE, 1, 3, 1234, 'DR LAN'],
      [ITEMS_PER_LOG_LINE, 2, 3, 1234, 'DR LAN'],
      [1234 - 2 * ITEMS_PER_LOG_LINE, 3, 3, 1234, 'DR LAN'],
    ]);
    expect(lines.flatMap((l) => l.sources as string[])).toEqual(pool.map((n) => n.name_label));
  });
});
