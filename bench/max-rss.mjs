// Preloaded into a measured process: at exit, writes its getrusage figures (peak RSS in KiB, CPU in µs)
// to $XCR_BENCH_RSS_FILE as JSON.
import { writeFileSync } from 'node:fs';

process.on('exit', () => {
  if (!process.env.XCR_BENCH_RSS_FILE) return;
  const { maxRSS, userCPUTime, systemCPUTime } = process.resourceUsage();
  writeFileSync(
    process.env.XCR_BENCH_RSS_FILE,
    JSON.stringify({ maxRSS, cpuMicros: userCPUTime + systemCPUTime }),
  );
});
