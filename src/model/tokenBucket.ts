// vserver's token-bucket CPU scheduler (TBF) as a pure model, its mapping onto
// CFS bandwidth control and shares, and a model of CFS bandwidth itself, so
// tests can compare "what vserver would give" with "what the kernel mapping
// gives" and the isolation suite can compare both with what the kernel did.
//
// Time is in milliseconds; one token = 1 ms of CPU on one CPU (vserver spent
// one token per tick; at HZ=1000 that is the same thing).
//
// tokensMin (vserver's hold hysteresis: an emptied bucket is held until it
// has tokensMin again) has no kernel equivalent. Its effect is the size of the
// run a throttled context gets after a hold, and in CFS that size is the
// quota: a throttled group gets exactly one quota of runtime per period. So
// toCfs() picks the period so that quota >= tokensMin (period =
// tokensMin / rate), then lengthens it if the bucket needs it (the kernel
// allows at most quota + burst <= 2 x quota per period). The long-run rate,
// which is what a cap is for, is exact either way.

import { PaeneError } from './errors.js';

export type CpuMode = 'hard' | 'share';

export interface TokenBucketParams {
  /** tokens added every interval */
  fillRate: number;
  /** ms between refills */
  interval: number;
  /** bucket depth: the most CPU-ms a context can burst after being idle */
  tokensMax: number;
  /** tokens an emptied bucket needs before the context runs again */
  tokensMin: number;
  /** hard: a cap; share: no cap, the rate becomes a weight under contention */
  mode: CpuMode;
}

/** vserver's defaults at HZ=1000: fill_rate=1, interval=4, tokens_max=HZ/2, tokens_min=HZ/16 (starts at HZ/4). */
export const VSERVER_TBF_DEFAULTS: TokenBucketParams = { fillRate: 1, interval: 4, tokensMax: 500, tokensMin: 62, mode: 'hard' };
export const VSERVER_TBF_INITIAL_TOKENS = 250;

/** CPUs' worth of CPU per ms: fillRate / interval (0.25 = a quarter of one CPU). */
export function rateOf(p: Pick<TokenBucketParams, 'fillRate' | 'interval'>): number {
  return p.fillRate / p.interval;
}

function positive(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new PaeneError('invalid-argument', `${what}: must be a positive number, got ${String(v)}`);
  return v;
}

/** Checks a bucket; `where` prefixes messages (e.g. "limits.cpu"). */
export function validateBucket(x: unknown, where = 'cpu'): TokenBucketParams {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new PaeneError('invalid-argument', `${where}: must be an object`);
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['fillRate', 'interval', 'tokensMax', 'tokensMin', 'mode'].includes(k)) {
      throw new PaeneError('invalid-argument', `${where}: unknown field '${k}' (expected fillRate, interval, tokensMax, tokensMin, mode)`);
    }
  }
  if (o.mode !== 'hard' && o.mode !== 'share')
    throw new PaeneError('invalid-argument', `${where}.mode: must be 'hard' or 'share', got ${String(o.mode)}`);
  const p: TokenBucketParams = {
    fillRate: positive(o.fillRate, `${where}.fillRate`),
    interval: positive(o.interval, `${where}.interval`),
    tokensMax: positive(o.tokensMax, `${where}.tokensMax`),
    tokensMin: positive(o.tokensMin, `${where}.tokensMin`),
    mode: o.mode,
  };
  if (p.interval > 3_600_000) throw new PaeneError('invalid-argument', `${where}.interval: at most one hour (3600000 ms)`);
  if (p.tokensMin > p.tokensMax)
    throw new PaeneError('invalid-argument', `${where}: tokensMin (${p.tokensMin}) must not exceed tokensMax (${p.tokensMax})`);
  return p;
}

/**
 * The bucket behind `--cpu P%`: P ms of CPU per 100 ms (the kernel's default
 * CFS period, short enough that a capped interactive context never waits
 * long), a bucket of two periods' worth (the deepest the kernel's burst allows
 * at that period), tokensMin one period's worth.
 */
export function fromPercent(percent: number, mode: CpuMode = 'hard'): TokenBucketParams {
  if (!Number.isFinite(percent) || percent <= 0 || percent > 102_400) {
    throw new PaeneError('invalid-argument', `invalid CPU percentage ${percent}: must be above 0 and at most 102400 (1024 CPUs)`);
  }
  return { fillRate: percent, interval: 100, tokensMax: 2 * percent, tokensMin: percent, mode };
}

// ---------------------------------------------------------------------------
// The mapping onto the kernel.

export interface CfsParams {
  periodUs: number;
  /** -1 = no quota */
  quotaUs: number;
  burstUs: number;
}
export interface CfsMapping extends CfsParams {
  /** what had to change to satisfy the kernel's rules, in words */
  clamped: string[];
}

/** Kernel limits (kernel/sched/core.c): period 1 ms..1 s, quota >= 1 ms, burst <= quota. */
export const CFS_MIN_PERIOD_US = 1000;
export const CFS_MAX_PERIOD_US = 1_000_000;
export const CFS_MIN_QUOTA_US = 1000;

/** quota/period = fillRate/interval; quota + burst ≈ tokensMax; see the header for the period choice. */
export function toCfs(params: TokenBucketParams): CfsMapping {
  const clamped: string[] = [];
  const rate = rateOf(params);
  let periodMs = Math.max(params.interval, params.tokensMin / rate);
  if (params.tokensMax > 2 * rate * periodMs) periodMs = params.tokensMax / (2 * rate);
  if (periodMs > 1000) {
    periodMs = 1000;
    if (params.tokensMax > 2 * rate * 1000 + 1e-9)
      clamped.push(
        `bucket ${fmt(params.tokensMax)} ms limited to ${fmt(2 * rate * 1000)} ms: the kernel allows at most 2 x quota per period and a period of at most 1 s`,
      );
  }
  if (periodMs < 1) periodMs = 1;
  let quotaMs = rate * periodMs;
  if (quotaMs < 1) {
    periodMs = Math.min(1000, 1 / rate);
    quotaMs = rate * periodMs;
    if (quotaMs < 1 - 1e-9) {
      clamped.push(
        `rate ${fmt(rate * 100)}% raised to ${fmt(100 / periodMs)}%: the kernel's smallest quota is 1 ms per period of at most 1 s`,
      );
      quotaMs = 1;
    }
  }
  let burstMs = params.tokensMax - quotaMs;
  if (burstMs < 0) {
    clamped.push(
      `bucket ${fmt(params.tokensMax)} ms raised to one quota (${fmt(quotaMs)} ms): the kernel always grants a full quota per period`,
    );
    burstMs = 0;
  } else if (burstMs > quotaMs + 1e-9) {
    burstMs = quotaMs;
  }
  const periodUs = Math.round(periodMs * 1000);
  const quotaUs = Math.max(CFS_MIN_QUOTA_US, Math.round(quotaMs * 1000));
  return { periodUs, quotaUs, burstUs: Math.min(quotaUs, Math.round(burstMs * 1000)), clamped };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2).replace(/\.?0+$/, '');
}

export interface ShareMapping {
  /** cgroup v1 cpu.shares, 2..262144 */
  shares: number;
  /** cgroup v2 cpu.weight, 1..10000 */
  weight: number;
  clamped: string[];
}
export const DEFAULT_CPU_SHARE = 1024;

/**
 * A paene share weight (1024 = the default, as vserver and v1 cpu.shares
 * count) to v1 cpu.shares and v2 cpu.weight. v2 uses systemd's linear mapping
 * (CPUShares=1024 ≡ CPUWeight=100, weight = shares × 100 / 1024), not OCI's
 * 1 + (shares − 2) × 9999 / 262142: that one maps the default 1024 to 39, so
 * a context would lose against every other cgroup at the v2 default of 100,
 * and it distorts ratios (1024:256 becomes 39:10).
 */
export function toShares(weight: number): ShareMapping {
  if (!Number.isFinite(weight) || weight <= 0)
    throw new PaeneError('invalid-argument', `invalid CPU share ${weight}: must be a positive number`);
  const clamped: string[] = [];
  let shares = Math.round(weight);
  if (shares < 2) {
    clamped.push(`cpu.shares ${weight} raised to 2 (the kernel's minimum)`);
    shares = 2;
  } else if (shares > 262_144) {
    clamped.push(`cpu.shares ${weight} lowered to 262144 (the kernel's maximum)`);
    shares = 262_144;
  }
  let w = Math.round((weight * 100) / 1024);
  if (w < 1) {
    clamped.push(`cpu.weight raised to 1 (the kernel's minimum)`);
    w = 1;
  } else if (w > 10_000) {
    clamped.push(`cpu.weight lowered to 10000 (the kernel's maximum)`);
    w = 10_000;
  }
  return { shares, weight: w, clamped };
}

/** The OCI/runc conversion, for comparison and for reading other runtimes' cgroups. */
export function ociSharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262_142);
}

/** A share-mode bucket's weight: its rate in 1024ths of one CPU (vserver: in share mode the rate is the weight). */
export function shareWeightOf(p: Pick<TokenBucketParams, 'fillRate' | 'interval'>): number {
  return Math.max(2, Math.round(rateOf(p) * 1024));
}

// ---------------------------------------------------------------------------
// Limiters: one step = dt ms, in which the context could use `wantMs` CPU-ms.

export interface Limiter {
  /** returns the CPU-ms granted (≤ wantMs) */
  step(dtMs: number, wantMs: number): number;
}

/** vserver's bucket: refills fillRate every interval up to tokensMax; empty → on hold until tokensMin. */
export class TokenBucket implements Limiter {
  readonly params: TokenBucketParams;
  tokens: number;
  onHold = false;
  private sinceRefill = 0;

  constructor(params: TokenBucketParams, initialTokens = params.tokensMax) {
    this.params = params;
    this.tokens = Math.min(initialTokens, params.tokensMax);
  }

  step(dtMs: number, wantMs: number): number {
    const p = this.params;
    // Refills due by the start of this step (t = 0 gets none).
    while (this.sinceRefill >= p.interval - 1e-9) {
      this.sinceRefill -= p.interval;
      this.tokens = Math.min(p.tokensMax, this.tokens + p.fillRate);
    }
    this.sinceRefill += dtMs;
    if (p.mode === 'share') {
      // No cap; the bucket only records how far over its rate the context ran.
      this.tokens = Math.max(0, this.tokens - wantMs);
      return wantMs;
    }
    if (this.onHold && this.tokens >= p.tokensMin - 1e-9) this.onHold = false;
    if (this.onHold || wantMs <= 0) return 0;
    const grant = Math.min(wantMs, this.tokens);
    this.tokens -= grant;
    if (this.tokens <= 1e-9) {
      this.tokens = 0;
      this.onHold = true;
    }
    return grant;
  }
}

/** CFS bandwidth as the kernel does it: quota of runtime per period; unused runtime carries over up to quota + burst. */
export class CfsBandwidth implements Limiter {
  readonly periodMs: number;
  readonly quotaMs: number;
  readonly burstMs: number;
  runtime: number;
  private sincePeriod = 0;

  constructor(cfs: CfsParams, start: 'full' | 'empty' = 'full') {
    this.periodMs = cfs.periodUs / 1000;
    this.quotaMs = cfs.quotaUs < 0 ? Infinity : cfs.quotaUs / 1000;
    this.burstMs = cfs.burstUs / 1000;
    // 'empty' is a freshly configured group: the kernel starts it with one quota.
    this.runtime = start === 'full' ? this.quotaMs + this.burstMs : this.quotaMs;
  }

  step(dtMs: number, wantMs: number): number {
    if (this.quotaMs === Infinity) return wantMs;
    while (this.sincePeriod >= this.periodMs - 1e-9) {
      this.sincePeriod -= this.periodMs;
      this.runtime = Math.min(this.runtime + this.quotaMs, this.quotaMs + this.burstMs);
    }
    this.sincePeriod += dtMs;
    const grant = Math.min(wantMs, this.runtime);
    this.runtime -= grant;
    return grant;
  }
}

// ---------------------------------------------------------------------------
// Demand and simulation.

export interface Demand {
  /** CPU-ms of work arriving at ms t (Infinity: a hog, always runnable). */
  arrivals(tMs: number): number;
  /** CPUs the load can use at once (its runnable threads). */
  parallelism: number;
}

/** Always runnable on `parallelism` CPUs. */
export function hog(parallelism = 1): Demand {
  return { arrivals: () => Infinity, parallelism };
}

/** `workMs` of CPU work arriving every `everyMs` (e.g. 40 ms every 1 s), first at offsetMs. */
export function periodic(workMs: number, everyMs: number, offsetMs = 0, parallelism = 1): Demand {
  return { arrivals: (t) => (t >= offsetMs && (t - offsetMs) % everyMs === 0 ? workMs : 0), parallelism };
}

/** Given jobs: work arriving at given times. */
export function bursts(jobs: { atMs: number; workMs: number }[], parallelism = 1): Demand {
  const at = new Map<number, number>();
  for (const j of jobs) at.set(j.atMs, (at.get(j.atMs) ?? 0) + j.workMs);
  return { arrivals: (t) => at.get(t) ?? 0, parallelism };
}

export interface SimOptions {
  durationMs: number;
  /** width of the per-window series (default 1000 ms) */
  windowMs?: number;
  /** bucket state at t=0: 'full' (the context was idle before) or 'empty'; default 'full' */
  start?: 'full' | 'empty';
}

export interface JobResult {
  arrivedMs: number;
  workMs: number;
  doneMs: number;
  /** wall time from arrival to completion */
  latencyMs: number;
}

export interface SimResult {
  durationMs: number;
  /** CPU-ms received */
  cpuMs: number;
  /** cpuMs / durationMs: fraction of one CPU */
  share: number;
  /** fraction of one CPU in each window */
  series: number[];
  /** ms in which the context wanted more CPU than it got */
  throttledMs: number;
  /** finished jobs (not for hogs) */
  jobs: JobResult[];
}

/** Steps `limiter` 1 ms at a time against `demand`; work not yet served waits (FIFO). */
export function simulate(limiter: Limiter, demand: Demand, opts: SimOptions): SimResult {
  const windowMs = opts.windowMs ?? 1000;
  const series: number[] = [];
  const queue: { arrivedMs: number; workMs: number; left: number }[] = [];
  const jobs: JobResult[] = [];
  let hogging = false;
  let cpuMs = 0;
  let winCpu = 0;
  let throttledMs = 0;
  for (let t = 0; t < opts.durationMs; t++) {
    const a = demand.arrivals(t);
    if (a === Infinity) hogging = true;
    else if (a > 0) queue.push({ arrivedMs: t, workMs: a, left: a });
    const backlog = hogging ? Infinity : queue.reduce((s, j) => s + j.left, 0);
    const want = Math.min(backlog, demand.parallelism);
    const got = limiter.step(1, want);
    if (got < want - 1e-9) throttledMs++;
    cpuMs += got;
    winCpu += got;
    if (!hogging) {
      let g = got;
      while (g > 1e-12 && queue.length > 0) {
        const j = queue[0] as (typeof queue)[number];
        const use = Math.min(g, j.left);
        j.left -= use;
        g -= use;
        if (j.left <= 1e-9) {
          queue.shift();
          jobs.push({ arrivedMs: j.arrivedMs, workMs: j.workMs, doneMs: t + 1, latencyMs: t + 1 - j.arrivedMs });
        }
      }
    }
    if ((t + 1) % windowMs === 0) {
      series.push(winCpu / windowMs);
      winCpu = 0;
    }
  }
  if (opts.durationMs % windowMs !== 0) series.push(winCpu / (opts.durationMs % windowMs));
  return { durationMs: opts.durationMs, cpuMs, share: cpuMs / opts.durationMs, series, throttledMs, jobs };
}

/** What vserver's TBF would give `demand`. */
export function simulateTbf(params: TokenBucketParams, demand: Demand, opts: SimOptions): SimResult {
  const b = new TokenBucket(params, opts.start === 'empty' ? 0 : params.tokensMax);
  return simulate(b, demand, opts);
}

/** What CFS bandwidth control with these settings would give `demand`. */
export function simulateCfs(cfs: CfsParams, demand: Demand, opts: SimOptions): SimResult {
  return simulate(new CfsBandwidth(cfs, opts.start ?? 'full'), demand, opts);
}

// ---------------------------------------------------------------------------
// Shares: proportional and work-conserving.

export interface ShareContext {
  weight: number;
  /** CPUs it can use (its runnable threads; a hog with one thread = 1) */
  demand: number;
  /** hard cap in CPUs (quota/period), if any */
  cap?: number;
}

/**
 * Steady-state CPUs each context receives on `cpus` CPUs: each gets CPU in
 * proportion to its weight; what a context cannot use (its demand or cap is
 * lower) is shared out among the rest (water-filling), so no CPU idles while
 * someone wants it.
 */
export function predictShare(contexts: ShareContext[], cpus: number): number[] {
  const limit = contexts.map((c) => Math.max(0, Math.min(c.demand, c.cap ?? Infinity, cpus)));
  const got = contexts.map(() => 0);
  let active = contexts.map((_, i) => i).filter((i) => (limit[i] as number) > 0);
  let left = cpus;
  while (active.length > 0 && left > 1e-12) {
    const wsum = active.reduce((s, i) => s + (contexts[i] as ShareContext).weight, 0);
    const fair = active.map((i) => (left * (contexts[i] as ShareContext).weight) / wsum);
    const sated = active.filter((i, k) => (limit[i] as number) <= (fair[k] as number) + 1e-12);
    if (sated.length === 0) {
      active.forEach((i, k) => (got[i] = fair[k] as number));
      break;
    }
    for (const i of sated) {
      got[i] = limit[i] as number;
      left -= limit[i] as number;
    }
    active = active.filter((i) => !sated.includes(i));
  }
  return got;
}

// ---------------------------------------------------------------------------
// A byte/ops bucket for I/O metered after the fact (paene's own limiter where
// the kernel cannot throttle, e.g. v1 buffered writes): usage is charged when
// seen, the balance may go negative (debt), and the context is held (frozen)
// while it is in debt. The model of paene-iothrottle.c's bucket, which runs
// the same arithmetic with the depth the runtime gives it (--burst, always
// passed: runtime/iothrottle.ts defaultBurst).

export class IoBucket {
  readonly ratePerSec: number;
  readonly burst: number;
  tokens: number;
  private lastMs: number;

  constructor(ratePerSec: number, burst: number, nowMs = 0) {
    if (!(ratePerSec > 0) || !(burst >= 0)) throw new PaeneError('invalid-argument', `I/O bucket needs a positive rate and a burst ≥ 0`);
    this.ratePerSec = ratePerSec;
    this.burst = burst;
    this.tokens = burst;
    this.lastMs = nowMs;
  }

  private refill(nowMs: number): void {
    const dt = Math.max(0, nowMs - this.lastMs);
    this.lastMs = Math.max(this.lastMs, nowMs);
    this.tokens = Math.min(this.burst, this.tokens + (this.ratePerSec * dt) / 1000);
  }

  /** Records usage seen at nowMs; returns whether the context must now be held. */
  charge(amount: number, nowMs: number): boolean {
    this.refill(nowMs);
    this.tokens -= amount;
    return this.tokens < 0;
  }

  /** Whether the context must stay held at nowMs. */
  mustHold(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens < 0;
  }

  /** ms until the debt is paid off (0 if none). */
  msUntilClear(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.ratePerSec;
  }
}
