import cliProgress from 'cli-progress';
import type { Progress } from '../functions/replication/ports.js';

export interface ProgressView {
  update: Progress;
  stop(): void;
}

/** Progress bars per disk on a TTY; one plain line per finished disk otherwise. */
export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  if (!stream.isTTY) {
    return {
      update: ({ vmUuid, userdevice, bytes, total }) => {
        if (bytes === total) stream.write(`disk ${userdevice} of VM ${vmUuid}: ${bytes} bytes sent\n`);
      },
      stop() {},
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: ' {vm} disk {disk} |{bar}| {percentage}% {value}/{total} MB {speed} MB/s ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; started: number }>();
  return {
    update: ({ vmUuid, userdevice, bytes, total }) => {
      const key = `${vmUuid}/${userdevice}`;
      let entry = bars.get(key);
      const mb = (n: number) => Math.round(n / 1e6);
      if (!entry) {
        entry = {
          bar: multi.create(mb(total), 0, { vm: vmUuid.slice(0, 8), disk: userdevice, speed: '0' }),
          started: Date.now(),
        };
        bars.set(key, entry);
      }
      const seconds = Math.max((Date.now() - entry.started) / 1000, 0.001);
      entry.bar.update(mb(bytes), { speed: (bytes / 1e6 / seconds).toFixed(1) });
    },
    stop: () => multi.stop(),
  };
}
