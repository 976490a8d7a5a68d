// `paene stats`: per-context CPU, bucket model, memory, processes and disk
// I/O from the usage counters (vserver-stat, vtop).

import { eachBounded } from '../model/names.js';
import { TokenBucket, rateOf } from '../model/tokenBucket.js';
import { type BackoffStatus, backoffStatus } from './forkbackoff.js';
import { ioThrottleStatus } from './iothrottle.js';
import { sampleUsage, type UsageSample } from './limits.js';
import type { Runtime } from './runtime.js';

export interface StatsRow {
  name: string;
  cpuPercent: number;
  cpuSeconds: number;
  throttledMs: number;
  /** the vserver bucket model fed with the measured usage: tokens left (CPU-ms) and whether it would be on hold */
  bucket?: { tokens: number; tokensMax: number; onHold: boolean; ratePercent: number };
  memoryBytes: number;
  memoryLimit?: number;
  oomKills: number;
  processes: number;
  processLimit?: number;
  readBytes: number;
  writeBytes: number;
  readRate: number;
  writeRate: number;
  /** paene-iothrottle's meter, where it runs */
  throttle?: { written: number; tokens: number; heldMs: number; frozen: boolean };
  /** the fork back-off, where the context is guarded: held now, holds so far, refused forks */
  forkBackoff?: BackoffStatus;
  sample: UsageSample;
}

/**
 * The rows of `paene stats` for these running contexts, with each one's
 * fork back-off state from the monitor (a few requests at a time).
 */
export async function statsRows(
  rt: Runtime,
  names: string[],
  prev: Map<string, UsageSample>,
  buckets: Map<string, TokenBucket>,
): Promise<StatsRow[]> {
  const rows = names.map((n) => contextStats(rt, n, prev.get(n), buckets));
  await eachBounded(rows, 8, async (row) => {
    row.forkBackoff = await backoffStatus(rt, row.name);
  });
  return rows;
}

/**
 * One context's row of `paene stats`: rates over the time since `before`,
 * and the vserver bucket model (kept in `buckets` between samples) fed with
 * what the context really used.
 */
function contextStats(rt: Runtime, name: string, before: UsageSample | undefined, buckets: Map<string, TokenBucket>): StatsRow {
  const s = sampleUsage(rt, name);
  const dtMs = before ? s.atMs - before.atMs : 0;
  const d = (a: number, b: number | undefined) => (before && dtMs > 0 && b !== undefined ? Math.max(0, a - b) : 0);
  const cpuMs = d(s.cpuNs, before?.cpuNs) / 1e6;
  const cpu = rt.config(name).limits.cpu;
  let bucket: StatsRow['bucket'];
  if (cpu) {
    // The model's state: refilled over the interval, spent by what the context used.
    let b = buckets.get(name);
    if (!b || JSON.stringify(b.params) !== JSON.stringify(cpu)) {
      b = new TokenBucket(cpu);
      buckets.set(name, b);
    }
    if (dtMs > 0) {
      const steps = Math.max(1, Math.round(dtMs));
      for (let i = 0; i < steps; i++) b.step(1, 0);
      b.tokens = Math.max(0, b.tokens - cpuMs);
      b.onHold = cpu.mode === 'hard' && b.tokens < cpu.tokensMin && cpuMs >= rateOf(cpu) * dtMs * 0.95;
    }
    bucket = { tokens: Math.round(b.tokens), tokensMax: cpu.tokensMax, onHold: b.onHold, ratePercent: rateOf(cpu) * 100 };
  }
  const t = ioThrottleStatus(rt, name);
  return {
    name,
    cpuPercent: dtMs > 0 ? Math.round((cpuMs / dtMs) * 1000) / 10 : 0,
    cpuSeconds: Math.round(s.cpuNs / 1e7) / 100,
    throttledMs: Math.round(d(s.throttledNs, before?.throttledNs) / 1e6),
    bucket,
    memoryBytes: s.memoryBytes,
    memoryLimit: s.memoryLimit,
    oomKills: s.oomKills,
    processes: s.processes,
    processLimit: s.processLimit,
    readBytes: s.readBytes,
    writeBytes: s.writeBytes,
    readRate: dtMs > 0 ? (d(s.readBytes, before?.readBytes) * 1000) / dtMs : 0,
    writeRate: dtMs > 0 ? (d(s.writeBytes, before?.writeBytes) * 1000) / dtMs : 0,
    throttle: t ? { written: t.written, tokens: t.writeTokens, heldMs: t.heldMs, frozen: t.frozen } : undefined,
    sample: s,
  };
}
