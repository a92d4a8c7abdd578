/** One benchmark figure, printed as a JSON line on stdout (the contract scripts read). */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: string;
  [extra: string]: unknown;
}

export function report(figure: Figure): void {
  process.stdout.write(`${JSON.stringify(figure)}\n`);
}

/** Peak resident set size of this process so far, in MiB (from the kernel's high-water mark). */
export async function peakRssMiB(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile('/proc/self/status', 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
}
