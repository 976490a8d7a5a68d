// `paene limit` (vlimit/vsched: change a context's limits, live if it runs)
// and `paene stats` (vserver-stat/vtop: per-context CPU, bucket, memory,
// processes and disk I/O).

import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { PaeneError } from '../core/errors.js';
import { describeLimits, parseLimitFlags } from '../core/limits.js';
import { TokenBucket, rateOf } from '../core/tokenBucket.js';
import { formatByteRate, formatBytes } from '../core/units.js';
import { ioThrottleStatus } from '../runtime/iothrottle.js';
import { applyLimits, sampleUsage, type UsageSample } from '../runtime/limits.js';
import type { Runtime } from '../runtime/runtime.js';
import { runtimeOf } from './common.js';
import { addLimitOptions } from './context.js';
import { formatTable, printJson } from './format.js';


export function registerLimitCommands(program: Command): void {
  addLimitOptions(
    program
      .command('limit')
      .description('Show or change a context\'s resource limits; a running context gets them at once, and they persist')
      .argument('<name>', 'context name')
      .option('--json', 'print the result as JSON'),
  )
    .addHelpText('after', '\nWithout limit flags it shows the current limits. "unlimited" removes a limit, e.g. --memory unlimited.')
    .action(async (name: string, o: Record<string, unknown>, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const patch = parseLimitFlags(o as Record<string, string | undefined>);
      if (Object.keys(patch).length === 0) {
        const limits = rt.config(name).limits;
        if (o.json) printJson({ name, limits });
        else for (const l of describeLimits(limits)) console.log(l);
        return;
      }
      const r = await applyLimits(rt, name, patch);
      for (const w of r.warnings) process.stderr.write(`paene: warning: ${w}\n`);
      if (o.json) {
        printJson(r);
        return;
      }
      console.log(r.live ? `applied to running context '${name}' and saved` : `saved; '${name}' is stopped and gets them at its next start`);
      for (const l of describeLimits(r.limits)) console.log(`  ${l}`);
      if (r.io !== 'none') console.log(`  disk i/o enforced by: ${r.io}${r.throttler ? ` (throttler pid ${r.throttler})` : ''}`);
    });

  program
    .command('stats')
    .description('Per running context: CPU %, throttled time, token bucket, memory, processes, disk read/write bytes and rates')
    .argument('[names...]', 'contexts (default: every running one)')
    .option('--watch', 'refresh every --interval until interrupted')
    .option('--interval <ms>', 'sampling interval in ms', '1000')
    .option('--json', 'print JSON (one document; with --watch one per line)')
    .action(async (names: string[], o: { watch?: boolean; interval: string; json?: boolean }, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const interval = Number(o.interval);
      if (!Number.isFinite(interval) || interval < 100) throw new PaeneError('invalid-argument', `--interval must be at least 100 ms, got '${o.interval}'`);
      for (const n of names) rt.config(n); // unknown names fail early
      const pick = () => (names.length > 0 ? names : rt.store.names()).filter((n) => rt.store.live(n) !== undefined);
      const buckets = new Map<string, TokenBucket>();
      let prev = new Map<string, UsageSample>(pick().map((n) => [n, sampleUsage(rt, n)]));
      for (;;) {
        await sleep(interval);
        const rows = pick().map((n) => statsRow(rt, n, prev.get(n), buckets));
        prev = new Map(rows.map((r) => [r.name, r.sample]));
        if (o.json) {
          const doc = rows.map(({ sample: _s, ...r }) => r);
          if (o.watch) process.stdout.write(JSON.stringify(doc) + '\n');
          else printJson(doc);
        } else {
          if (o.watch && process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J');
          console.log(rows.length === 0 ? 'no running context' : formatTable(rows, STATS_COLUMNS));
        }
        if (!o.watch) return;
      }
    });
}

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
  sample: UsageSample;
}

function statsRow(rt: Runtime, name: string, before: UsageSample | undefined, buckets: Map<string, TokenBucket>): StatsRow {
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

const STATS_COLUMNS = [
  { header: 'NAME', get: (r: StatsRow) => r.name },
  { header: 'CPU%', get: (r: StatsRow) => r.cpuPercent.toFixed(1), align: 'right' as const },
  { header: 'CPU-S', get: (r: StatsRow) => r.cpuSeconds.toFixed(2), align: 'right' as const },
  { header: 'THROTTLED', get: (r: StatsRow) => `${r.throttledMs} ms`, align: 'right' as const },
  { header: 'BUCKET', get: (r: StatsRow) => (r.bucket ? `${r.bucket.tokens}/${r.bucket.tokensMax}${r.bucket.onHold ? ' hold' : ''}` : '-'), align: 'right' as const },
  { header: 'MEMORY', get: (r: StatsRow) => `${formatBytes(r.memoryBytes)}${r.memoryLimit ? ` / ${formatBytes(r.memoryLimit)}` : ''}`, align: 'right' as const },
  { header: 'PROCS', get: (r: StatsRow) => `${r.processes}${r.processLimit ? `/${r.processLimit}` : ''}`, align: 'right' as const },
  { header: 'READ', get: (r: StatsRow) => `${formatBytes(r.readBytes)} ${formatByteRate(r.readRate)}`, align: 'right' as const },
  { header: 'WRITE', get: (r: StatsRow) => `${formatBytes(r.writeBytes)} ${formatByteRate(r.writeRate)}${r.throttle?.frozen ? ' held' : ''}`, align: 'right' as const },
];
