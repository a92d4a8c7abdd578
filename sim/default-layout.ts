/** The pools `npm run sim` starts without --config (and the embedded demo uses). */
import type { SimDiskSpec, SimPoolSpec } from './types.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** `totalMiB` of data in `regions` equal regions spread evenly over a disk of `sizeBytes`. */
function spread(
  sizeBytes: number,
  totalMiB: number,
  regions: number,
  seed: number,
): NonNullable<SimDiskSpec['data']> {
  const len = Math.floor((totalMiB * MiB) / regions);
  const stride = Math.floor(sizeBytes / regions / MiB) * MiB;
  return Array.from({ length: regions }, (_, i) => ({ offset: i * stride, length: len, seed: seed + i }));
}

export function defaultLayout(): { pools: SimPoolSpec[] } {
  return {
    pools: [
      {
        name: 'site-a',
        srs: [{ name_label: 'Local storage', sizeBytes: 200 * GiB, type: 'ext' }],
        networks: [{ name_label: 'Pool-wide network' }],
        vms: [
          {
            name_label: 'web-01',
            power_state: 'Running',
            vcpus: 2,
            memoryBytes: 2 * GiB,
            tags: ['web'],
            disks: [
              { name_label: 'web-01 system', sizeBytes: 8 * GiB, data: spread(8 * GiB, 40, 10, 100) },
              { name_label: 'web-01 data', sizeBytes: 2 * GiB, data: spread(2 * GiB, 10, 5, 200) },
            ],
            vifs: [{ network: 'Pool-wide network' }],
          },
          {
            name_label: 'db-01',
            power_state: 'Running',
            vcpus: 4,
            memoryBytes: 8 * GiB,
            tags: ['db'],
            disks: [{ name_label: 'db-01 system', sizeBytes: 16 * GiB, data: spread(16 * GiB, 60, 12, 300) }],
            vifs: [{ network: 'Pool-wide network' }],
          },
          { name_label: 'appliance', power_state: 'Halted', vcpus: 1, memoryBytes: 1 * GiB },
        ],
      },
      {
        name: 'site-b',
        srs: [{ name_label: 'Replica storage', sizeBytes: 500 * GiB, type: 'ext' }],
        networks: [{ name_label: 'Replica network' }],
        vms: [],
      },
    ],
  };
}
