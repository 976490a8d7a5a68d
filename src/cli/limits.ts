// `paene limit` (vlimit/vsched: change a context's limits, live if it runs)
// and `paene stats` (vserver-stat/vtop: per-context CPU, bucket, memory,
// processes and disk I/O).

import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { PaeneError } from '../model/errors.js';
import { describeLimits } from '../model/limits.js';
import { parseLimitFlags } from '../model/limitflags.js';
import type { TokenBucket } from '../model/tokenBucket.js';
import { formatByteRate, formatBytes } from '../model/units.js';
import { applyLimits, sampleUsage, type UsageSample } from '../runtime/limits.js';
import { type StatsRow, statsRows } from '../runtime/stats.js';
import { runtimeOf } from './common.js';
import { addLimitOptions } from './context.js';
import { formatTable, printJson } from './format.js';
import { type ManyOptions, type Outcome, namesOf, report, runMany } from './many.js';
import type { ContextConfig } from '../context/config.js';

export function registerLimitCommands(program: Command): void {
  addLimitOptions(
    program
      .command('limit')
      .description(
        "Show or change contexts' resource limits; a running context gets them at once, and they persist. Several names, a pattern (web*) or --all change each",
      )
      .argument('[names...]', 'context names or patterns (web*)')
      .option('-a, --all', 'every context of this root')
      .option('-j, --jobs <n>', 'contexts worked on at once (default: 2 × CPUs)')
      .option('--json', 'print the result as JSON (several: an array of {name, ok, result | error})'),
  )
    .addHelpText('after', '\nWithout limit flags it shows the current limits. "unlimited" removes a limit, e.g. --memory unlimited.')
    .action(async (args: string[], o: Record<string, unknown> & ManyOptions, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const { all: _all, jobs: _jobs, json: _json, ...flags } = o;
      const patch = parseLimitFlags(flags as Record<string, string | undefined>);
      const { names, many } = namesOf(rt, args, o);
      if (Object.keys(patch).length === 0) {
        const outcomes = names.map((n): Outcome<ContextConfig['limits']> => {
          try {
            return { ok: true, value: rt.config(n).limits };
          } catch (e) {
            return { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
          }
        });
        report(
          names,
          many,
          outcomes,
          o,
          (n, limits) => (many ? [`${n}:`, ...describeLimits(limits).map((l) => `  ${l}`)] : describeLimits(limits)).join('\n'),
          (n, limits) => (many ? limits : { name: n, limits }),
        );
        return;
      }
      await runMany(
        rt,
        args,
        o,
        async (n) => {
          const r = await applyLimits(rt, n, patch);
          for (const w of r.warnings) process.stderr.write(`paene: warning: ${many ? `${n}: ` : ''}${w}\n`);
          return r;
        },
        (n, r) => {
          const head = r.live ? `applied to running context '${n}' and saved` : `saved; '${n}' is stopped and gets them at its next start`;
          if (many) return head;
          const lines = [head, ...describeLimits(r.limits).map((l) => `  ${l}`)];
          if (r.io !== 'none') lines.push(`  disk i/o enforced by: ${r.io}${r.throttler ? ` (throttler pid ${r.throttler})` : ''}`);
          return lines.join('\n');
        },
      );
    });

  program
    .command('stats')
    .description(
      'Per running context: CPU %, throttled time, token bucket, memory, processes ("held": the fork back-off holds a spinning bomb), disk read/write bytes and rates',
    )
    .argument('[names...]', 'contexts (default: every running one)')
    .option('--watch', 'refresh every --interval until interrupted')
    .option('--interval <ms>', 'sampling interval in ms', '1000')
    .option('--json', 'print JSON (one document; with --watch one per line)')
    .action(async (names: string[], o: { watch?: boolean; interval: string; json?: boolean }, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const interval = Number(o.interval);
      if (!Number.isFinite(interval) || interval < 100)
        throw new PaeneError('invalid-argument', `--interval must be at least 100 ms, got '${o.interval}'`);
      for (const n of names) rt.config(n); // unknown names fail early
      const pick = () => (names.length > 0 ? names : rt.store.names()).filter((n) => rt.store.live(n) !== undefined);
      const buckets = new Map<string, TokenBucket>();
      let prev = new Map<string, UsageSample>(pick().map((n) => [n, sampleUsage(rt, n)]));
      for (;;) {
        await sleep(interval);
        const rows = await statsRows(rt, pick(), prev, buckets);
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

const STATS_COLUMNS = [
  { header: 'NAME', get: (r: StatsRow) => r.name },
  { header: 'CPU%', get: (r: StatsRow) => r.cpuPercent.toFixed(1), align: 'right' as const },
  { header: 'CPU-S', get: (r: StatsRow) => r.cpuSeconds.toFixed(2), align: 'right' as const },
  { header: 'THROTTLED', get: (r: StatsRow) => `${r.throttledMs} ms`, align: 'right' as const },
  {
    header: 'BUCKET',
    get: (r: StatsRow) => (r.bucket ? `${r.bucket.tokens}/${r.bucket.tokensMax}${r.bucket.onHold ? ' hold' : ''}` : '-'),
    align: 'right' as const,
  },
  {
    header: 'MEMORY',
    get: (r: StatsRow) => `${formatBytes(r.memoryBytes)}${r.memoryLimit ? ` / ${formatBytes(r.memoryLimit)}` : ''}`,
    align: 'right' as const,
  },
  {
    header: 'PROCS',
    get: (r: StatsRow) => `${r.processes}${r.processLimit ? `/${r.processLimit}` : ''}${r.forkBackoff?.held ? ' held' : ''}`,
    align: 'right' as const,
  },
  { header: 'READ', get: (r: StatsRow) => `${formatBytes(r.readBytes)} ${formatByteRate(r.readRate)}`, align: 'right' as const },
  {
    header: 'WRITE',
    get: (r: StatsRow) => `${formatBytes(r.writeBytes)} ${formatByteRate(r.writeRate)}${r.throttle?.frozen ? ' held' : ''}`,
    align: 'right' as const,
  },
];
