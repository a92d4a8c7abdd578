/**
 * VHD codec benchmarks. Figures:
 * Every consumer copies the bytes it receives once (as a socket write would). Throughput = bytes per
 * CPU-second of the benchmark process (steadier than wall time on a shared machine). Each ratio is the
 * median of paired runs: the two variants back to back (in alternating order, so neither always runs
 * first), after warm-up pairs that are not counted (V8 needs several runs to optimise the stream code).
 * - vhd.read_verify_ratio: VhdVerifier pass-through throughput / PassThrough throughput, same bytes, same run
 *   (a VHD with 8 GiB of allocated 2 MiB blocks, 64 KiB chunks: a run takes 0.2-0.4 CPU s, not a few
 *   dozen milliseconds that one collection or preemption decides). Extra fields reader_ratio and
 *   reader_fresh_buffers_ratio: readVhdStream consuming every block / a plain for-await over the same chunks.
 * - vhd.write_ratio: createVhdWriter throughput / a Readable yielding the same precomputed buffers.
 * - vhd.rss_growth_mib: peak RSS verifying a 16 GiB-allocated stream minus a 1 GiB one (fresh child processes).
 */
import { spawnSync } from 'node:child_process';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createVhdWriter, readVhdStream, VhdVerifier } from '../functions/vhd/index.js';
import { median, peakRssMiB, report } from '../test/support/figure.js';

const MiB = 1024 * 1024;
const BLOCK = 2 * MiB;
const CHUNK = 64 * 1024;
const WARMUP_PAIRS = 3;
const PAIRS = 9;

const shared = Buffer.alloc(BLOCK, 0x5a);

/** Pieces of a fully allocated VHD (prologue, then bitmap + data per block, footer) from the writer's layout. */
async function vhdPieces(
  allocatedBytes: number,
): Promise<{ prologue: Buffer; bitmap: Buffer; footer: Buffer; n: number }> {
  const n = allocatedBytes / BLOCK;
  const w = createVhdWriter({
    diskType: 'dynamic',
    virtualSize: n * BLOCK,
    blocks: [...Array(n).keys()],
    readBlock: async () => shared,
  });
  const it = w.stream[Symbol.asyncIterator]();
  const prologue = (await it.next()).value as Buffer;
  const bitmap = (await it.next()).value as Buffer;
  w.stream.destroy();
  const footer = Buffer.from(prologue.subarray(0, 512));
  return { prologue, bitmap, footer, n };
}

/** The stream as 64 KiB chunks (subarrays of one shared block: generating it costs next to nothing). */
function* chunks(p: { prologue: Buffer; bitmap: Buffer; footer: Buffer; n: number }): Generator<Buffer> {
  yield p.prologue;
  for (let i = 0; i < p.n; i++) {
    yield p.bitmap;
    for (let at = 0; at < BLOCK; at += CHUNK) yield shared.subarray(at, at + CHUNK);
  }
  yield p.footer;
}

/**
 * Where the bytes go: like a socket write, the sink copies every byte once (into a scratch buffer),
 * so throughputs are those of moving real bytes, not of passing references around.
 */
const scratch = Buffer.alloc(BLOCK);
function consume(c: Uint8Array): void {
  for (let at = 0; at < c.length; at += BLOCK) scratch.set(c.subarray(at, at + BLOCK));
}

function sink(): Writable & { bytes: number } {
  const w = new Writable({
    write(c: Buffer, _e, cb) {
      consume(c);
      w.bytes += c.length;
      cb();
    },
  }) as Writable & { bytes: number };
  w.bytes = 0;
  return w;
}

/** How the heap is cleared before each run (see timed). */
type Clear = 'minor' | 'full';

/**
 * CPU seconds (user + system) of this process spent in `fn`: the machines running the benchmarks are
 * shared and loaded, and CPU time measures the work done far more steadily than wall time does.
 *
 * Each run starts without the previous run's garbage, so neither variant pays for the other's. Where
 * that garbage is young (the verifier, the writer: chunk views and stream bookkeeping) a minor GC
 * clears it. A full collection would also clear the weak references V8's optimised code holds: the
 * stream code was then deoptimised ("weak objects") and recompiled at the start of every run, a
 * warm-up per run that the verifier, with more JavaScript of its own, paid more for (measured: 0.90-0.93
 * with a full GC before each run, 0.96-1.02 with a minor one, same code). A transfer runs one pipeline
 * for minutes, and its paced collections are minor ones (reclaim.ts). The reader's runs leave 2 MiB
 * block buffers in the old generation, which only a full collection frees.
 */
async function timed(fn: () => Promise<number>, clear: Clear): Promise<{ seconds: number; bytes: number }> {
  const gc = (globalThis as { gc?: (o?: { type: 'minor' | 'major' }) => void }).gc;
  gc?.({ type: clear === 'minor' ? 'minor' : 'major' });
  const t0 = process.cpuUsage();
  const bytes = await fn();
  const d = process.cpuUsage(t0);
  return { seconds: (d.user + d.system) / 1e6, bytes };
}

interface Comparison {
  /** Median over the counted pairs of (a's throughput / b's), and the lowest and highest pair. */
  ratio: number;
  spread: [number, number];
  /** Median throughputs in bytes/s. */
  a: number;
  b: number;
}

/**
 * `a` against `b`: WARMUP_PAIRS pairs first (not counted), then PAIRS pairs, each pair run back to
 * back in alternating order, so a slow moment of the machine falls on both sides of one ratio.
 */
async function compare(
  a: () => Promise<number>,
  b: () => Promise<number>,
  clear: Clear = 'minor',
): Promise<Comparison> {
  const ratios: number[] = [];
  const rateA: number[] = [];
  const rateB: number[] = [];
  for (let r = 0; r < WARMUP_PAIRS + PAIRS; r++) {
    const aFirst = r % 2 === 0;
    const first = await timed(aFirst ? a : b, clear);
    const second = await timed(aFirst ? b : a, clear);
    const [ta, tb] = aFirst ? [first, second] : [second, first];
    if (r < WARMUP_PAIRS) continue;
    rateA.push(ta.bytes / ta.seconds);
    rateB.push(tb.bytes / tb.seconds);
    ratios.push(ta.bytes / ta.seconds / (tb.bytes / tb.seconds));
  }
  return {
    ratio: median(ratios),
    spread: [Math.min(...ratios), Math.max(...ratios)],
    a: median(rateA),
    b: median(rateB),
  };
}

async function verifyOnce(p: Parameters<typeof chunks>[0]): Promise<number> {
  const s = sink();
  const v = new VhdVerifier();
  await pipeline(Readable.from(chunks(p), { objectMode: false }), v, s);
  if (s.bytes !== (await v.info).totalLength) throw new Error('verifier lost bytes');
  return s.bytes;
}

async function readVerifyRatio(): Promise<void> {
  const p = await vhdPieces(8 * 1024 * MiB);
  const passThrough = async () => {
    const s = sink();
    await pipeline(Readable.from(chunks(p), { objectMode: false }), new PassThrough(), s);
    return s.bytes;
  };
  const verify = await compare(() => verifyOnce(p), passThrough);
  const small = await vhdPieces(2 * 1024 * MiB);
  const plainIterate = async () => {
    let bytes = 0;
    for await (const c of Readable.from(chunks(small), { objectMode: false })) {
      consume(c as Buffer);
      bytes += (c as Buffer).length;
    }
    return bytes;
  };
  const readAll = async (reuseBlockBuffer: boolean) => {
    const source = Readable.from(chunks(small), { objectMode: false });
    const { info, blocks } = await readVhdStream(source, { reuseBlockBuffer });
    let n = 0;
    for await (const b of blocks()) {
      consume(b.bitmap);
      consume(b.data);
      n += b.data.length;
    }
    if (n !== info.allocatedBlocks * BLOCK) throw new Error('reader lost blocks');
    return info.totalLength;
  };
  const reader = await compare(() => readAll(true), plainIterate, 'full');
  const fresh = await compare(() => readAll(false), plainIterate, 'full');
  report({
    name: 'vhd.read_verify_ratio',
    value: round(verify.ratio),
    unit: 'ratio',
    baseline: `PassThrough of the same 8 GiB-allocated VHD bytes (64 KiB chunks), same run, bytes per CPU-second; median of ${PAIRS} alternating pairs after ${WARMUP_PAIRS} warm-up pairs`,
    pair_ratio_min: round(verify.spread[0]),
    pair_ratio_max: round(verify.spread[1]),
    verifier_mib_s: round(verify.a / MiB),
    passthrough_mib_s: round(verify.b / MiB),
    reader_ratio: round(reader.ratio),
    reader_mib_s: round(reader.a / MiB),
    reader_fresh_buffers_ratio: round(fresh.ratio),
    reader_baseline:
      'for-await over the same chunks (a 2 GiB-allocated VHD); the reader assembles each 2 MiB block (one extra copy; ' +
      'reader_ratio reuses one block buffer, reader_fresh_buffers_ratio allocates one per block)',
  });
}

async function writeRatio(): Promise<void> {
  const n = 1024;
  const p = await vhdPieces(n * BLOCK);
  const writer = async () => {
    const w = createVhdWriter({
      diskType: 'dynamic',
      virtualSize: n * BLOCK,
      blocks: [...Array(n).keys()],
      readBlock: async () => shared,
    });
    const s = sink();
    await pipeline(w.stream, s);
    if (s.bytes !== w.length) throw new Error('writer length mismatch');
    return s.bytes;
  };
  const plain = async () => {
    async function* same(): AsyncGenerator<Buffer> {
      yield p.prologue;
      for (let i = 0; i < n; i++) {
        yield p.bitmap;
        yield shared;
      }
      yield p.footer;
    }
    const s = sink();
    await pipeline(Readable.from(same(), { objectMode: false }), s);
    return s.bytes;
  };
  const write = await compare(writer, plain);
  report({
    name: 'vhd.write_ratio',
    value: round(write.ratio),
    unit: 'ratio',
    baseline: `Readable.from of the same precomputed buffers (prologue, bitmap + 2 MiB block ×1024, footer), bytes per CPU-second; median of ${PAIRS} alternating pairs after ${WARMUP_PAIRS} warm-up pairs`,
    pair_ratio_min: round(write.spread[0]),
    pair_ratio_max: round(write.spread[1]),
    writer_mib_s: round(write.a / MiB),
    plain_mib_s: round(write.b / MiB),
  });
}

function childPeak(gib: number): number {
  const res = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--rss-child', String(gib)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const m = /PEAK (\S+)/.exec(res.stdout);
  if (res.status !== 0 || !m) throw new Error(`rss child (${gib} GiB) failed: ${res.status}`);
  return Number(m[1]);
}

async function rssGrowth(): Promise<void> {
  const small = childPeak(1);
  const large = childPeak(16);
  report({
    name: 'vhd.rss_growth_mib',
    value: round(large - small),
    unit: 'MiB',
    baseline: 'peak RSS (VmHWM) verifying a 1 GiB-allocated stream, fresh child process',
    peak_1gib_mib: round(small),
    peak_16gib_mib: round(large),
  });
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

if (process.argv[2] === '--rss-child') {
  const gib = Number(process.argv[3]);
  await verifyOnce(await vhdPieces(gib * 1024 * MiB));
  process.stdout.write(`PEAK ${await peakRssMiB()}\n`);
} else {
  await readVerifyRatio();
  await writeRatio();
  await rssGrowth();
}
