// Parsing and printing of the quantities limits are given in: sizes, rates,
// percentages, durations. Pure.
//
// Sizes are binary: K, KB, KiB all mean 1024 bytes (as in vserver's vlimit,
// ulimit, docker's --memory and the kernel's own "64M" in boot parameters).
// Accepting "KB" as 1000 would make `--memory 64MB` and `--memory 64M` differ
// by 5%, a surprise nobody asking for a memory limit wants.

import { PaeneError } from './errors.js';

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };
const SIZE_RE = /^(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]?)(i?b)?$/i;
const NUM_RE = /^(\d+(?:\.\d+)?|\.\d+)$/;

function bad(what: string, s: string, expect: string): PaeneError {
  return new PaeneError('invalid-argument', `invalid ${what} '${s}': ${expect}`);
}

/** "64M", "64MiB", "64MB", "5G", "1.5GiB", "4096" (bytes), "512b" → bytes (whole, rounded). */
export function parseSize(s: string, what = 'size'): number {
  const m = SIZE_RE.exec(s.trim());
  if (!m)
    throw bad(
      what,
      s,
      'expected a number of bytes with an optional unit K, M, G, T, P (binary: K = 1024; KiB and KB mean the same), e.g. 64M or 1.5GiB',
    );
  const unit = SIZE_UNITS[(m[2] as string).toUpperCase()] as number;
  const v = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(v)) throw bad(what, s, 'too large');
  return v;
}

export interface Rate {
  kind: 'bytes' | 'ops';
  perSecond: number;
}

/**
 * "10MiB/s", "10M/s", "10M" → bytes per second; "500/s", "500iops", "500ops/s" →
 * operations per second. A rate with a size unit is bytes; a bare number with
 * /s is operations (that is how io.max and blkio.throttle count them).
 */
export function parseRate(s: string, what = 'rate'): Rate {
  const t = s.trim();
  const ops = /^(\d+(?:\.\d+)?)\s*(?:\/s|iops|ops(?:\/s)?)$/i.exec(t);
  if (ops) return { kind: 'ops', perSecond: Math.round(Number(ops[1])) };
  const bytes = /^(.*?)\s*(?:\/s)?$/i.exec(t);
  const body = bytes?.[1] ?? '';
  if (body !== '' && SIZE_RE.test(body)) return { kind: 'bytes', perSecond: parseSize(body, what) };
  throw bad(what, s, 'expected bytes per second such as 10MiB/s or 10M, or operations per second such as 500/s or 500iops');
}

/** A byte rate: an ops rate given where bytes are expected is an error (and the reverse). */
export function parseByteRate(s: string, what = 'byte rate'): number {
  const t = s.trim();
  // A bare number is bytes/s here: the flag already says which kind.
  if (NUM_RE.test(t)) return parseSize(t, what);
  const r = parseRate(t, what);
  if (r.kind !== 'bytes') throw bad(what, s, 'expected bytes per second, e.g. 10MiB/s (for operations use the -ops flag)');
  return r.perSecond;
}

export function parseOpsRate(s: string, what = 'operation rate'): number {
  const t = s.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const r = parseRate(t, what);
  if (r.kind !== 'ops') throw bad(what, s, 'expected operations per second, e.g. 500/s');
  return r.perSecond;
}

/** "25%" or "25" → 25 (percent of one CPU for --cpu; may exceed 100 on several CPUs). */
export function parsePercent(s: string, what = 'percentage'): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*%?$/.exec(s.trim());
  if (!m) throw bad(what, s, 'expected a percentage such as 25%');
  return Number(m[1]);
}

const DURATION_UNITS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "100ms", "2s", "1.5s", "250us", "5m", bare number = ms → milliseconds. */
export function parseDuration(s: string, what = 'duration'): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(us|µs|ms|s|m|h)?$/i.exec(s.trim());
  if (!m) throw bad(what, s, 'expected a duration such as 100ms, 2s or 250us (a bare number is milliseconds)');
  return Number(m[1]) * (DURATION_UNITS[(m[2] ?? 'ms').toLowerCase()] as number);
}

/** A whole number, min..max; for counts like --nproc. */
export function parseCount(s: string, what = 'count', min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const t = s.trim();
  if (!/^\d+$/.test(t)) throw bad(what, s, `expected a whole number from ${min} to ${max}`);
  const n = Number(t);
  if (n < min || n > max) throw bad(what, s, `expected a whole number from ${min} to ${max}`);
  return n;
}

function trimNum(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1).replace(/\.?0+$/, '');
}

/** 67108864 → "64MiB", 1536 → "1.5KiB", 100 → "100B". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${trimNum(v)}${units[i]}`;
}

export function formatByteRate(n: number): string {
  return `${formatBytes(n)}/s`;
}

export function formatOpsRate(n: number): string {
  return `${trimNum(n)}/s`;
}

export function formatPercent(p: number): string {
  return `${trimNum(Math.round(p * 10) / 10)}%`;
}

/** 0.25 → "250us", 100 → "100ms", 2500 → "2.5s". */
export function formatDuration(ms: number): string {
  if (ms < 1 && ms !== 0) return `${trimNum(Math.round(ms * 1000 * 10) / 10)}us`;
  if (ms < 1000) return `${trimNum(ms)}ms`;
  if (ms < 60_000) return `${trimNum(ms / 1000)}s`;
  return `${trimNum(ms / 60_000)}m`;
}
