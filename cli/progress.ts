import cliProgress from 'cli-progress';
import type { Progress } from '../functions/replication/ports.js';

export interface ProgressView {
  update: Progress;
  /** Stops and leaves the bars drawn so far (call before printing anything else); updates after it draw new bars. */
  stop(): void;
}

const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;

/**
 * Progress bars per disk on a TTY (total known before the first byte: the VHD stream's length, or a
 * cbt disk's changed bytes); one plain line per finished disk otherwise.
 */
export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  if (!stream.isTTY) {
    return {
      update: ({ vmUuid, userdevice, bytes, total }) => {
        if (total > 0 && bytes >= total)
          stream.write(`disk ${userdevice} of VM ${vmUuid}: ${bytes} bytes sent\n`);
      },
      stop() {},
    };
  }
  let multi: cliProgress.MultiBar | undefined;
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    update: ({ vmUuid, userdevice, bytes, total }) => {
      if (total <= 0) return; // the length is not known yet: no bar with a made-up total
      multi ??= new cliProgress.MultiBar(
        {
          stream,
          format: ' {vm} disk {disk} |{bar}| {percentage}% {value}/{total} MB ETA {eta_formatted}',
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 20,
          barsize: 24, // the whole line fits in 80 columns
          formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? v.toFixed(1) : String(v)),
        },
        cliProgress.Presets.shades_classic,
      );
      const key = `${vmUuid}/${userdevice}`;
      let bar = bars.get(key);
      if (!bar) {
        bar = multi.create(mb(total), 0, { vm: vmUuid.slice(0, 8), disk: userdevice });
        bars.set(key, bar);
      }
      bar.setTotal(Math.max(mb(total), mb(bytes)));
      bar.update(mb(bytes));
    },
    stop: () => {
      multi?.stop();
      multi = undefined;
      bars.clear();
    },
  };
}
