// The isolation suite: the experiments of the paper's section 5 (and the
// disk hog it could not isolate), run against real contexts on this kernel.
// Each experiment creates its own contexts with the limits already set,
// bounds every hog in time and count, and destroys its contexts in `finally`.
// Used by `paene check isolation` and by test/isolation/*.test.ts.

import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_LIMITS, mergeLimits } from '../model/limits.js';
import { parseLimitFlags } from '../model/limitflags.js';
import { reservedAddressOf } from '../net/model.js';
import { fromPercent, hog, periodic, predictShare, simulateCfs, simulateTbf, toCfs } from '../model/tokenBucket.js';
import { nativePath } from '../kernel/helper.js';
import { FORK_BACKOFF } from '../model/forkbackoff.js';
import { backoffStatus } from '../runtime/forkbackoff.js';
import { applyLimits, sampleUsage } from '../runtime/limits.js';
import { blockDevicesFor, ioMechanism, throttlerOf } from '../runtime/iothrottle.js';
import type { Runtime } from '../runtime/runtime.js';
import { DEFAULT_IMAGE } from '../image/store.js';

/** 'noisy': the paper-grade bar was missed while the host's own load moved; rerun on a quiet host. */
export type Verdict = 'pass' | 'fail' | 'info' | 'noisy';

/**
 * Each row is judged twice. `verdict` holds the measurement to the paper's
 * bar (tight tolerances: what `paene check isolation` and the benchmark JSON
 * report). `guarantee` is what the kernel mechanism promises whatever else
 * runs on the machine (a cap is never exceeded by more than a stated margin,
 * a bomb stops at its limit): the tests assert only that, so a loaded host
 * cannot make them fail while the mechanism is right.
 */
export interface ResultRow {
  experiment: string;
  setting: string;
  measured: string;
  expected: string;
  verdict: Verdict;
  /** the mechanism's promise and whether it held (absent on informational rows) */
  guarantee?: { expected: string; holds: boolean };
  /** the raw figures */
  data: Record<string, number | string | boolean>;
}

/** Rows whose mechanism guarantee did not hold (what the tests assert empty). */
export function brokenGuarantees(rows: ResultRow[]): string[] {
  return rows
    .filter((r) => r.guarantee && !r.guarantee.holds)
    .map((r) => `${r.setting}: ${r.measured} (guaranteed ${r.guarantee?.expected})`);
}

const guard = (expected: string, holds: boolean) => ({ expected, holds });

export interface IsoOptions {
  /** shorter windows (5 s instead of 10 s), fewer samples */
  quick?: boolean;
  log?: (s: string) => void;
  /** name prefix of the contexts made (default "iso") */
  prefix?: string;
}

export const EXPERIMENTS = ['cpu-cap', 'shares', 'nine-hogs', 'fork-bomb', 'memory-hog', 'disk-hog', 'ipc'] as const;
export type ExperimentName = (typeof EXPERIMENTS)[number];

const r1 = (n: number) => Math.round(n * 10) / 10;

/** Contexts of one experiment: made with limits, the load tool copied in, all destroyed by `close`. */
class Bench {
  private readonly made: string[] = [];
  private readonly tool = fs.readFileSync(nativePath('iso-load'));
  private readonly ipcTool = fs.readFileSync(nativePath('sysv-ipc'));
  constructor(
    readonly rt: Runtime,
    readonly prefix: string,
    readonly log: (s: string) => void,
  ) {}

  name(n: string): string {
    return `${this.prefix}-${n}`;
  }

  /** Creates and starts a context with limit flags (as on the command line), tools in /tmp. */
  async context(n: string, flags: Record<string, string> = {}): Promise<string> {
    const name = this.name(n);
    if (this.rt.store.exists(name)) await this.rt.destroy(name, { force: true });
    const limits = mergeLimits(DEFAULT_LIMITS, parseLimitFlags(flags));
    await this.rt.create({ name, image: DEFAULT_IMAGE, limits });
    this.made.push(name);
    await this.rt.start(name);
    await this.sh(name, 'cat > /tmp/iso-load && chmod 755 /tmp/iso-load', this.tool);
    await this.sh(name, 'cat > /tmp/sysv-ipc && chmod 755 /tmp/sysv-ipc', this.ipcTool);
    return name;
  }

  async sh(name: string, script: string, input?: Buffer, timeoutMs = 60_000): Promise<string> {
    const r = await this.rt.execCapture(name, ['/bin/sh', '-c', script], { input, timeoutMs });
    if (r.code !== 0) throw new Error(`in ${name}: '${script}' failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Runs a script without waiting; the promise resolves when it ends (any exit code). */
  bg(name: string, script: string, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.rt.execCapture(name, ['/bin/sh', '-c', script], { timeoutMs });
  }

  async close(): Promise<void> {
    for (const n of this.made.reverse()) {
      try {
        await this.rt.destroy(n, { force: true });
      } catch (e) {
        this.log(`  (could not destroy ${n}: ${(e as Error).message})`);
      }
    }
    this.made.length = 0;
  }
}

/** CPU used by a context between two moments, in % of one CPU. */
async function cpuPercentOver(rt: Runtime, name: string, ms: number): Promise<number> {
  const a = sampleUsage(rt, name);
  await sleep(ms);
  const b = sampleUsage(rt, name);
  return ((b.cpuNs - a.cpuNs) / 1e6 / (b.atMs - a.atMs)) * 100;
}

/**
 * A harness timeout scaled by how loaded the host is (the 1-minute load per
 * CPU, at most 4x): a timeout is a safety net, never a verdict.
 */
function loadScaled(ms: number): number {
  return Math.round(ms * Math.min(4, Math.max(1, os.loadavg()[0] / Math.max(1, os.cpus().length))));
}

/** Runs a host program (from dist/native) and collects stdout. */
function hostRun(program: string, args: string[], baseTimeoutMs = 60_000, netns?: string): Promise<string> {
  const timeoutMs = loadScaled(baseTimeoutMs);
  return new Promise((resolve, reject) => {
    // In another network namespace (a context without the shared model) through nsenter; still a host process otherwise.
    const argv = netns ? ['nsenter', `--net=${netns}`, '--', nativePath(program), ...args] : [nativePath(program), ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      if (code === 0) resolve(out);
      // a killed helper names its signal, and whether it was our harness timeout (a loaded host) that killed it
      const how = signal ? `killed by ${signal}${timedOut ? ` after the ${timeoutMs / 1000} s harness timeout` : ''}` : `exit ${code}`;
      if (code !== 0) reject(new Error(`${program} ${args.join(' ')} failed (${how}): ${err.trim()}`));
    });
  });
}

function kv(line: string): Record<string, number> {
  const o: Record<string, number> = {};
  for (const m of line.matchAll(/(\w+)=([\d.]+)/g)) o[m[1] as string] = Number(m[2]);
  return o;
}

// ---------------------------------------------------------------------------
// 1. CPU cap and the bucket

async function cpuCap(b: Bench, o: IsoOptions): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const windowMs = o.quick ? 5000 : 10_000;
  const name = await b.context('cap', { cpu: '25%' });
  const params = fromPercent(25);
  const cfs = toCfs(params);
  const hogRun = b.bg(name, `/tmp/iso-load hog ${(windowMs + 1500) / 1000}`);
  await sleep(1000);
  const before = sampleUsage(b.rt, name);
  const pct = await cpuPercentOver(b.rt, name, windowMs);
  const after = sampleUsage(b.rt, name);
  await hogRun;
  const tbf = simulateTbf(params, hog(), { durationMs: windowMs, start: 'empty' }).share * 100;
  const cfsModel = simulateCfs(cfs, hog(), { durationMs: windowMs, start: 'empty' }).share * 100;
  rows.push({
    experiment: '1 cpu cap',
    setting: `--cpu 25% (quota ${cfs.quotaUs}/${cfs.periodUs} us, burst ${cfs.burstUs} us), one hog, ${windowMs / 1000} s`,
    measured: `${r1(pct)}% of one CPU`,
    expected: '25% ± 2',
    verdict: Math.abs(pct - 25) <= 2 ? 'pass' : 'fail',
    // The cap can only be undershot by a busy host; overshoot is bounded by one bucket over the window.
    guarantee: guard('at most 30%, at least 10%', pct <= 30 && pct >= 10),
    data: {
      percent: r1(pct),
      throttledMs: Math.round((after.throttledNs - before.throttledNs) / 1e6),
      nrThrottled: after.nrThrottled - before.nrThrottled,
    },
  });
  rows.push({
    experiment: '1 cpu cap',
    setting: 'token-bucket model (vserver TBF and CFS) vs kernel',
    measured: `model TBF ${r1(tbf)}%, CFS ${r1(cfsModel)}%, kernel ${r1(pct)}%`,
    expected: 'within 3 points',
    verdict: Math.abs(tbf - pct) <= 3 && Math.abs(cfsModel - pct) <= 3 ? 'pass' : 'fail',
    guarantee: guard('kernel at most the CFS model + 5', pct <= cfsModel + 5),
    data: { tbf: r1(tbf), cfs: r1(cfsModel), kernel: r1(pct) },
  });

  // A bursty load within the bucket: 40 ms of work every second.
  const jobs = o.quick ? 3 : 5;
  await sleep(1000); // idle: the bucket refills (one unused period refills the burst; ten here)
  const s0 = sampleUsage(b.rt, name);
  const walls = (await b.sh(name, `/tmp/iso-load spin 40 1000 ${jobs}`)).trim().split('\n').map(Number);
  const s1 = sampleUsage(b.rt, name);
  const model = simulateCfs(cfs, periodic(40, 1000), { durationMs: jobs * 1000, start: 'full' }).jobs.map((j) => j.latencyMs);
  const worst = Math.max(...walls);
  const median = [...walls].sort((x, y) => x - y)[Math.floor(walls.length / 2)] ?? Infinity;
  const throttled = s1.nrThrottled - s0.nrThrottled;
  rows.push({
    experiment: '1 cpu cap',
    setting: `bursts of 40 ms CPU every 1 s at --cpu 25% (bucket ${params.tokensMax} ms)`,
    measured: `wall ${walls.map((w) => w.toFixed(1)).join('/')} ms, ${throttled} throttled periods`,
    // A slower job with no throttled period waited for another host process, not for the cap.
    expected: `not throttled: 0 periods, median ~${Math.max(...model)} ms (model)`,
    verdict: throttled === 0 && median <= Math.max(...model) * 1.25 + 2 ? 'pass' : 'fail',
    // Without the burst a 40 ms job at 25 ms per 100 ms must wait a period (> 100 ms, a throttled period):
    // the bucket makes the difference. What it guarantees is that the cap never stopped a job; the wall time
    // also counts waits for other host processes (a loaded host), so it is the paper verdict's, not this.
    guarantee: guard('not throttled: 0 periods (a quota-only bucket throttles every 40 ms job)', throttled === 0),
    data: { medianMs: r1(median), worstMs: r1(worst), modelMs: Math.max(...model), throttledPeriods: throttled },
  });
  if (!o.quick) {
    // A bucket of one quota (no burst): bursts of 60 ms, more than two quotas, must wait for a later
    // period whatever their phase (a 40 ms one that starts 25 ms before a period ends finishes in 40 ms).
    await applyLimits(b.rt, name, { cpu: { tokensMax: 25, tokensMin: 25 } });
    await sleep(300);
    const small = toCfs({ ...params, tokensMax: 25, tokensMin: 25 });
    const w2 = (await b.sh(name, `/tmp/iso-load spin 60 1000 3`)).trim().split('\n').map(Number);
    const m2 = simulateCfs(small, periodic(60, 1000), { durationMs: 3000, start: 'full' }).jobs.map((j) => j.latencyMs);
    rows.push({
      experiment: '1 cpu cap',
      setting: `bursts of 60 ms, bucket of one quota (paene limit --cpu-tokens-max 25, live)`,
      measured: `wall ${w2.map((w) => w.toFixed(1)).join('/')} ms`,
      expected: `throttled: model ${Math.min(...m2)}-${Math.max(...m2)} ms`,
      verdict: Math.min(...w2) > 100 ? 'pass' : 'fail',
      // 60 ms at 25 ms per 100 ms period: at best 25 + 25 ms, a wait, 10 ms: 135 ms (the kernel may overrun a quota by a slice)
      guarantee: guard('every job over 100 ms', Math.min(...w2) > 100),
      data: { minMs: r1(Math.min(...w2)), maxMs: r1(Math.max(...w2)), modelMinMs: Math.min(...m2), modelMaxMs: Math.max(...m2) },
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------
// 2. Shares

async function shares(b: Bench, o: IsoOptions): Promise<ResultRow[]> {
  const windowMs = o.quick ? 4000 : 8000;
  const a = await b.context('share-a', { 'cpu-share': '1024' });
  const c = await b.context('share-b', { 'cpu-share': '256' });
  // Both hogs pinned to CPU 1, so they contend for one CPU.
  const runs = [a, c].map((n) => b.bg(n, `/tmp/iso-load hog ${(windowMs + 1500) / 1000} 1`));
  await sleep(1000);
  const a0 = sampleUsage(b.rt, a);
  const c0 = sampleUsage(b.rt, c);
  await sleep(windowMs);
  const a1 = sampleUsage(b.rt, a);
  const c1 = sampleUsage(b.rt, c);
  await Promise.all(runs);
  const ua = a1.cpuNs - a0.cpuNs;
  const uc = c1.cpuNs - c0.cpuNs;
  const pa = (ua / (ua + uc)) * 100;
  const model = predictShare(
    [
      { weight: 1024, demand: 1 },
      { weight: 256, demand: 1 },
    ],
    1,
  );
  const used = ((ua + uc) / 1e6 / (a1.atMs - a0.atMs)) * 100;
  return [
    {
      experiment: '2 shares',
      setting: `--cpu-share 1024 vs 256, one hog each on CPU 1, ${windowMs / 1000} s`,
      measured: `${r1(pa)} / ${r1(100 - pa)} (together ${r1(used)}% of CPU 1)`,
      expected: `${r1(((model[0] ?? 0) / 1) * 100)} / ${r1(((model[1] ?? 0) / 1) * 100)} ± 3`,
      verdict: Math.abs(pa - 80) <= 3 ? 'pass' : 'fail',
      guarantee: guard('the heavier one gets 65-92', pa >= 65 && pa <= 92),
      data: { a: r1(pa), b: r1(100 - pa), cpu1Busy: r1(used) },
    },
  ];
}

// ---------------------------------------------------------------------------
// 3. A latency-sensitive server next to nine CPU hogs

async function nineHogs(b: Bench, o: IsoOptions): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const pings = o.quick ? 300 : 600;
  const port = 20000 + (process.pid % 20000);
  const srv = await b.context('srv');
  const hogs: string[] = [];
  for (let i = 1; i <= 9; i++) hogs.push(await b.context(`hog${i}`));
  const phaseMs = pings * 5.2 + 1000;
  const server = b.bg(srv, `/tmp/iso-load udp-echo ${port} ${Math.ceil((5 * phaseMs + 10_000) / 1000)}`);
  await sleep(300);
  // The server binds 127.0.0.1, which its network wall makes its own address: the host pings that, and
  // its answers go to the pool's host address (a reply to 127.0.0.1 would stay inside: docs/network.md).
  // Where contexts get no shared stack (an older kernel), the host-side client enters the server's namespace.
  const shared = b.rt.config(srv).net.mode === 'shared';
  const srvAddr = shared ? (b.rt.config(srv).net.addresses.find((a) => !a.includes(':')) ?? '127.0.0.1') : '127.0.0.1';
  const pingArgs = [
    'udp-ping',
    String(port),
    String(pings),
    '5',
    srvAddr,
    ...(shared ? [reservedAddressOf(b.rt.network.settings().sharedPool4)] : []),
  ];
  const netns = shared ? undefined : `/proc/${b.rt.status(srv).pid}/ns/net`;
  const ping = async () => kv(await hostRun('iso-load', pingArgs, 60_000, netns));
  const row = (setting: string, r: Record<string, number>, base?: Record<string, number>): ResultRow => ({
    experiment: '3 nine hogs',
    setting,
    measured: `p50 ${((r.p50_us ?? 0) / 1000).toFixed(2)} ms, p99 ${((r.p99_us ?? 0) / 1000).toFixed(2)} ms, ${r1((r.under_1ms ?? 0) * 100)}% under 1 ms${r.lost ? `, ${r.lost} lost` : ''}`,
    // The paper's bar (its game server stayed under 1 ms): p99 within 1 ms and within twice the idle baseline.
    expected: base ? `p99 <= 1 ms and <= 2x the idle p99 (${((2 * (base.p99_us ?? 0)) / 1000).toFixed(2)} ms)` : 'baseline',
    verdict: base ? ((r.p99_us ?? Infinity) <= 1000 && (r.p99_us ?? Infinity) <= 2 * (base.p99_us ?? 0) ? 'pass' : 'fail') : 'info',
    ...(base
      ? { guarantee: guard('p50 under 3 ms, at most 2% lost', (r.p50_us ?? Infinity) < 3000 && (r.lost ?? 0) <= pings * 0.02) }
      : {}),
    data: {
      p50us: r.p50_us ?? 0,
      p90us: r.p90_us ?? 0,
      p99us: r.p99_us ?? 0,
      maxUs: r.max_us ?? 0,
      under1ms: r.under_1ms ?? 0,
      lost: r.lost ?? 0,
    },
  });
  try {
    const idle = await ping();
    rows.push(row(`UDP echo in a context, client on the host, ${pings} pings 5 ms apart, idle`, idle));
    const hogSecs = Math.ceil((4 * phaseMs + 6000) / 1000);
    const runs = hogs.map((h) => b.bg(h, `/tmp/iso-load hog ${hogSecs}`));
    await sleep(1000);
    const busy = await ping();
    rows.push(row('9 other contexts each running a CPU hog, default limits (share 1024)', busy, idle));
    for (const h of hogs) await applyLimits(b.rt, h, { cpu: fromPercent(20) });
    await sleep(500);
    const capped = await ping();
    rows.push(row('the same 9 hogs capped live at --cpu 20% each', capped, idle));
    // The latency classes (docs/isolation.md): the server low, then the hogs idle, caps removed.
    for (const h of hogs) await applyLimits(b.rt, h, { cpu: null });
    await applyLimits(b.rt, srv, { cpuLatency: 'low' });
    await sleep(300);
    rows.push(row('9 uncapped hogs, the server at --cpu-latency low (a 0.1 ms slice)', await ping(), idle));
    await applyLimits(b.rt, srv, { cpuLatency: null });
    for (const h of hogs) await applyLimits(b.rt, h, { cpuLatency: 'idle' });
    await sleep(300);
    rows.push(row('the 9 hogs at --cpu-latency idle (cpu.idle), the server normal', await ping(), idle));
    await Promise.all(runs);
  } finally {
    await server;
  }
  return rows;
}

// ---------------------------------------------------------------------------
// 4. Fork bomb

async function forkBomb(b: Bench, o: IsoOptions): Promise<ResultRow[]> {
  const n = o.quick ? 300 : 1000;
  const bomb = await b.context('bomb', { nproc: '64' });
  const peer = await b.context('peer');
  const lat = async () => ({
    host: kv(await hostRun('iso-load', ['forklat', String(n)])),
    peer: kv(await b.sh(peer, `/tmp/iso-load forklat ${n}`)),
  });
  const before = await lat();
  const run = b.bg(bomb, '/tmp/iso-load forkbomb 10', 30_000);
  await sleep(1500);
  const cg = b.rt.cgroupOf(bomb);
  const count = () => Number(cg.read('pids', 'pids.current') ?? cg.pids().length);
  // Counted before the latencies too: on a busy host they can outlast the bomb's 10 s, and its processes leave.
  const early = count();
  const during = await lat();
  const procs = Math.max(early, count());
  const limitHits = Number(/max (\d+)/.exec(cg.read('pids', 'pids.events') ?? '')?.[1] ?? 0);
  const pidsSeen = cg.pids();
  const t0 = performance.now();
  await b.rt.stop(bomb, { timeoutMs: 2000 });
  const stopMs = performance.now() - t0;
  await run;
  const survivors = pidsSeen.filter((p) => fs.existsSync(`/proc/${p}`) && !/^\S+ \S+ Z/.test(safeRead(`/proc/${p}/stat`)));
  const hostFactor = slow(during.host.mean_us ?? 0, before.host.mean_us ?? 0);
  const peerFactor = slow(during.peer.mean_us ?? 0, before.peer.mean_us ?? 0);
  const spin = await spinningBomb(b, lat, {});
  const spinOff = o.quick ? undefined : await spinningBomb(b, lat, { 'fork-backoff': 'off' });
  const p50 = (r: Record<string, number>) => r.p50_us ?? 0;
  const spinMeasured = (m: SpinRun) =>
    `host ${r1(p50(m.before.host))} → ${r1(p50(m.during.host))} us (${m.hostX.toFixed(2)}x), other context ${r1(p50(m.before.peer))} → ${r1(p50(m.during.peer))} us (${m.peerX.toFixed(2)}x); the bomb used ${r1(m.bombCpu)}% of one CPU`;
  const spinData = (m: SpinRun) => ({
    hostBeforeP50Us: p50(m.before.host),
    hostDuringP50Us: p50(m.during.host),
    peerBeforeP50Us: p50(m.before.peer),
    peerDuringP50Us: p50(m.during.peer),
    bombCpuPercent: r1(m.bombCpu),
    throttledPeriods: m.throttled,
    holds: m.holds,
    left: m.left,
  });
  const spinRows: ResultRow[] = [
    {
      experiment: '4 fork bomb',
      setting: `spinning fork bomb in a default context (nproc 1024, fork back-off ${FORK_BACKOFF.defaultPercent}%), fork+exit p50, ${n} forks`,
      measured: `${spinMeasured(spin)}, held ${spin.holds} times`,
      expected: 'host p50 <= 1.5x its baseline (the lower of before and after), other context <= 2x',
      verdict: spin.hostX <= 1.5 && spin.peerX <= 2 ? 'pass' : 'fail',
      // Held: a few % of a CPU plus ~50 ms free in every 2 s (the bomb alone takes 100-200%); stop leaves none.
      guarantee: guard(
        'held (throttled, at most 50% of one CPU), both fork (p50 < 20x or < 10 ms), stop leaves none',
        spin.holds >= 1 && spin.throttled > 0 && spin.bombCpu <= 50 && spin.forks && spin.left === 0,
      ),
      data: spinData(spin),
    },
  ];
  if (spinOff) {
    spinRows.push({
      experiment: '4 fork bomb',
      setting: 'the same bomb with --fork-backoff off (what the back-off buys)',
      measured: spinMeasured(spinOff),
      expected: 'for comparison',
      verdict: 'info',
      guarantee: guard('both fork (p50 < 20x or < 10 ms), stop leaves none', spinOff.forks && spinOff.left === 0),
      data: spinData(spinOff),
    });
  }
  return [
    {
      experiment: '4 fork bomb',
      setting: '--nproc 64, exponential fork bomb (10 s bound)',
      measured: `${procs} processes, pids.max hit ${limitHits} times`,
      expected: 'stops at 64',
      verdict: procs <= 64 && procs >= 60 && limitHits > 0 ? 'pass' : 'fail',
      guarantee: guard('at most 64, limit hit', procs <= 64 && limitHits > 0),
      data: { processes: procs, limitHits },
    },
    {
      experiment: '4 fork bomb',
      setting: `fork+exit latency during the bomb, ${n} forks`,
      measured: `host ${r1(before.host.mean_us ?? 0)} → ${r1(during.host.mean_us ?? 0)} us, other context ${r1(before.peer.mean_us ?? 0)} → ${r1(during.peer.mean_us ?? 0)} us`,
      expected: 'both can still fork (mean < 5x before or < 2 ms)',
      verdict:
        (hostFactor < 5 || (during.host.mean_us ?? 1e9) < 2000) && (peerFactor < 5 || (during.peer.mean_us ?? 1e9) < 2000)
          ? 'pass'
          : 'fail',
      guarantee: guard(
        'both fork (mean < 20x before or < 10 ms)',
        (hostFactor < 20 || (during.host.mean_us ?? 1e9) < 10_000) && (peerFactor < 20 || (during.peer.mean_us ?? 1e9) < 10_000),
      ),
      data: {
        hostBeforeUs: before.host.mean_us ?? 0,
        hostDuringUs: during.host.mean_us ?? 0,
        peerBeforeUs: before.peer.mean_us ?? 0,
        peerDuringUs: during.peer.mean_us ?? 0,
      },
    },
    {
      experiment: '4 fork bomb',
      setting: 'paene stop of the bombed context',
      measured: `${survivors.length} of ${pidsSeen.length} processes left, ${Math.round(stopMs)} ms`,
      expected: 'no process left',
      verdict: survivors.length === 0 && !cg.exists() ? 'pass' : 'fail',
      guarantee: guard('no process left', survivors.length === 0 && !cg.exists()),
      data: { left: survivors.length, stopMs: Math.round(stopMs) },
    },
    ...spinRows,
  ];
}

const slow = (a: number, base: number) => a / Math.max(base, 1);

type Latencies = { host: Record<string, number>; peer: Record<string, number> };

interface SpinRun {
  /** the lower of the p50s measured before the bomb and after it (other people's load only ever raises one) */
  before: Latencies;
  during: Latencies;
  hostX: number;
  peerX: number;
  /** the bomb's CPU while the latencies were measured, % of one CPU */
  bombCpu: number;
  throttled: number;
  holds: number;
  /** both still fork: p50 < 20x before or < 10 ms */
  forks: boolean;
  left: number;
}

/**
 * A bomb whose processes spin in a failing fork() (iso-load forkbomb retries
 * at once), in a context with these flags and the default nproc 1024: bounded
 * to 10 s, stopped and verified gone. p50 of fork+exit, as the goal says.
 */
async function spinningBomb(b: Bench, lat: () => Promise<Latencies>, flags: Record<string, string>): Promise<SpinRun> {
  const name = await b.context(flags['fork-backoff'] === 'off' ? 'spin-off' : 'spin', flags);
  const first = await lat();
  const run = b.bg(name, '/tmp/iso-load forkbomb 10', 60_000);
  let during: Latencies;
  let u0: ReturnType<typeof sampleUsage>;
  let u1: ReturnType<typeof sampleUsage>;
  let status: Awaited<ReturnType<typeof backoffStatus>>;
  const cg = b.rt.cgroupOf(name);
  let seen: number[] = [];
  try {
    // The monitor looks at a quiet context every second: the bomb is held within about one.
    await sleep(2500);
    u0 = sampleUsage(b.rt, name);
    during = await lat();
    u1 = sampleUsage(b.rt, name);
    status = await backoffStatus(b.rt, name);
    seen = cg.pids();
  } finally {
    await b.rt.stop(name, { timeoutMs: 2000 });
    await run;
  }
  const left =
    seen.filter((p) => fs.existsSync(`/proc/${p}`) && !/^\S+ \S+ Z/.test(safeRead(`/proc/${p}/stat`))).length + (cg.exists() ? 1 : 0);
  // A baseline inflated by a burst of someone else's work would flatter the ratio: the lower of before and after.
  const after = await lat();
  const lower = (x: Record<string, number>, y: Record<string, number>) => ((x.p50_us ?? Infinity) <= (y.p50_us ?? Infinity) ? x : y);
  const base = { host: lower(first.host, after.host), peer: lower(first.peer, after.peer) };
  const hostX = slow(during.host.p50_us ?? 0, base.host.p50_us ?? 0);
  const peerX = slow(during.peer.p50_us ?? 0, base.peer.p50_us ?? 0);
  const forks = (hostX < 20 || (during.host.p50_us ?? 1e9) < 10_000) && (peerX < 20 || (during.peer.p50_us ?? 1e9) < 10_000);
  return {
    before: base,
    during,
    hostX,
    peerX,
    bombCpu: ((u1.cpuNs - u0.cpuNs) / 1e6 / (u1.atMs - u0.atMs)) * 100,
    throttled: u1.nrThrottled - u0.nrThrottled,
    holds: status?.holds ?? 0,
    forks,
    left,
  };
}

function safeRead(f: string): string {
  try {
    return fs.readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------
// 5. Memory hog

async function memoryHog(b: Bench, _o: IsoOptions): Promise<ResultRow[]> {
  const mem = await b.context('mem', { memory: '64M' });
  const peer = await b.context('mpeer');
  void b.bg(peer, 'sleep 30 & echo $!; wait', 40_000);
  await sleep(200);
  const peerPids = b.rt.cgroupOf(peer).pids();
  const hostChild = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const r = await b.rt.execCapture(mem, ['/tmp/iso-load', 'alloc', '200'], { timeoutMs: 60_000 });
    const lines = r.stdout.trim().split('\n');
    const reached = Number(lines.filter((l) => /^\d+$/.test(l)).pop() ?? 0);
    const u = sampleUsage(b.rt, mem);
    const peerAlive = peerPids.every((p) => fs.existsSync(`/proc/${p}`));
    const hostAlive = hostChild.exitCode === null && hostChild.signalCode === null;
    const ctxAlive = b.rt.store.live(mem) !== undefined;
    return [
      {
        experiment: '5 memory hog',
        setting: '--memory 64M, one process touching 200 MiB',
        measured: `${r.code === 137 ? 'OOM-killed (SIGKILL)' : `exit ${r.code}`} at ${reached} MiB, ${u.oomKills} OOM kill(s) in the context`,
        expected: 'killed inside the context near 64 MiB',
        verdict: r.code === 137 && reached <= 64 && u.oomKills >= 1 ? 'pass' : 'fail',
        guarantee: guard('killed at or below 64 MiB', r.code === 137 && reached <= 64 && u.oomKills >= 1),
        data: { exit: r.code, reachedMiB: reached, oomKills: u.oomKills },
      },
      {
        experiment: '5 memory hog',
        setting: 'a process of another context and one on the host',
        measured: `other context ${peerAlive ? 'untouched' : 'KILLED'}, host ${hostAlive ? 'untouched' : 'KILLED'}, the hog's context ${ctxAlive ? 'still running' : 'gone'}`,
        expected: 'untouched',
        verdict: peerAlive && hostAlive && ctxAlive ? 'pass' : 'fail',
        guarantee: guard('untouched', peerAlive && hostAlive && ctxAlive),
        data: { peerAlive, hostAlive, ctxAlive },
      },
    ];
  } finally {
    hostChild.kill('SIGKILL');
  }
}

// ---------------------------------------------------------------------------
// 6. Disk hog

/** bytes/s of a dd line: "N bytes (...) copied, S s, ..." */
function ddRate(stderr: string): number {
  const m = /(\d+) bytes.*copied, ([\d.]+) s/.exec(stderr);
  if (!m) throw new Error(`cannot read dd's output: ${stderr.trim()}`);
  return Number(m[1]) / Number(m[2]);
}

async function diskHog(b: Bench, o: IsoOptions): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const windowMs = o.quick ? 5000 : 10_000;
  const rate = 10 * 1024 * 1024;
  const hogName = await b.context('disk', { 'io-write': '10MiB/s' });
  const other = await b.context('disk2');
  const devices = blockDevicesFor(b.rt.layout.upperDir(hogName));
  if (devices.length === 0) {
    // A layer on tmpfs (a VM whose state root is in memory): writes never reach a disk, so there is nothing to hold.
    return [
      {
        experiment: '6 disk hog',
        setting: '--io-write 10MiB/s',
        measured: `the private layer (${b.rt.layout.upperDir(hogName)}) is on no block device: its writes never reach a disk`,
        expected: 'a state root on a disk',
        verdict: 'info',
        data: { blockDevices: 0 },
      },
    ];
  }
  const mech = ioMechanism(b.rt.cgroupHost, b.rt.config(hogName).limits, devices);
  const otherDd = async () => {
    const r = await b.rt.execCapture(
      other,
      ['/bin/sh', '-c', 'dd if=/dev/zero of=/var/tmp/o bs=1M count=64 conv=fsync 2>&1 >/dev/null; rm -f /var/tmp/o'],
      { timeoutMs: 60_000 },
    );
    return ddRate(r.stdout);
  };
  // The median of three runs: one 64 MiB dd takes ~0.2 s and the disk is shared with the rest of the host.
  const median3 = async () => {
    const v: number[] = [];
    for (let i = 0; i < 3; i++) v.push(await otherDd());
    return v.sort((x, y) => x - y)[1] as number;
  };
  const alone = await median3();
  const file = path.join(b.rt.layout.upperDir(hogName), 'var/tmp/hog');
  const size = () => {
    try {
      return fs.statSync(file).size;
    } catch {
      return 0;
    }
  };
  for (const mode of ['buffered', 'direct'] as const) {
    // At most (2 s + window + 1 s) of writing at the limit; bounded in bytes.
    const mib = Math.ceil(((windowMs + 3000) / 1000) * 10);
    const flag = mode === 'direct' ? ' oflag=direct' : '';
    const run = b.bg(
      hogName,
      `timeout ${Math.ceil(windowMs / 1000) + 15} dd if=/dev/zero of=/var/tmp/hog bs=1M count=${mib} iflag=fullblock${flag} 2>/dev/null; rm -f /var/tmp/hog`,
    );
    await sleep(2000);
    // The file's size on the host, every 50 ms over the window; the rate is the
    // least-squares slope (a held writer advances in steps, and two end points
    // alone would land on a step's top or bottom).
    const pts: [number, number][] = [];
    const t0 = performance.now();
    let during = 0;
    const sampler = (async () => {
      while (performance.now() - t0 < windowMs) {
        pts.push([(performance.now() - t0) / 1000, size()]);
        await sleep(50);
      }
    })();
    await sleep(Math.min(3000, windowMs / 3));
    during = await median3();
    await sampler;
    const got = slope(pts);
    await run;
    const held = throttlerOf(b.rt, hogName);
    rows.push({
      experiment: '6 disk hog',
      setting: `--io-write 10MiB/s, sustained dd (${mode}) for ${windowMs / 1000} s [${mech}]`,
      measured: `${(got / 1048576).toFixed(2)} MiB/s`,
      expected: '10 MiB/s ± 10%',
      verdict: Math.abs(got - rate) <= rate * 0.1 ? 'pass' : 'fail',
      // Held: never much above the limit (the unthrottled dd runs at the disk's speed, tens of times more).
      guarantee: guard('at most 13 MiB/s and it wrote', got <= rate * 1.3 && got > 0),
      data: { mibPerSec: r1(got / 1048576), mechanism: mech, throttler: held !== undefined },
    });
    rows.push({
      experiment: '6 disk hog',
      setting: `another context's dd (64 MiB, conv=fsync, median of 3) during the ${mode} hog`,
      measured: `${r1(during / 1048576)} MiB/s vs ${r1(alone / 1048576)} alone (${r1((during / alone) * 100)}%)`,
      expected: 'at least 80% of alone',
      verdict: during >= 0.8 * alone ? 'pass' : 'fail',
      guarantee: guard('at least 40% of alone', during >= 0.4 * alone),
      data: { aloneMiBs: r1(alone / 1048576), duringMiBs: r1(during / 1048576) },
    });
  }
  return rows;
}

/** Least-squares slope of y over x. */
function slope(pts: [number, number][]): number {
  const n = pts.length;
  if (n < 2) return 0;
  const mx = pts.reduce((a, p) => a + p[0], 0) / n;
  const my = pts.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of pts) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den > 0 ? num / den : 0;
}

// ---------------------------------------------------------------------------
// 7. SysV IPC

async function ipc(b: Bench, _o: IsoOptions): Promise<ResultRow[]> {
  const a = await b.context('ipc-a', { 'shm-all': '1M' });
  const c = await b.context('ipc-b');
  const key = '0x5eed';
  const ca = await b.sh(a, `/tmp/sysv-ipc create ${key} value-a`);
  const cc = await b.sh(c, `/tmp/sysv-ipc create ${key} value-b`);
  const ra = await b.sh(a, `/tmp/sysv-ipc read ${key}`);
  const rc = await b.sh(c, `/tmp/sysv-ipc read ${key}`);
  const ok =
    /created/.test(ca) && /created/.test(cc) && /shm=value-a sem=1 msg=value-a/.test(ra) && /shm=value-b sem=1 msg=value-b/.test(rc);
  const overA = await b.rt.execCapture(a, ['/tmp/sysv-ipc', 'shm', '0x600d', String(2 << 20)]);
  const overB = await b.rt.execCapture(c, ['/tmp/sysv-ipc', 'shm', '0x600d', String(2 << 20)]);
  const stillA = await b.rt.execCapture(a, ['/tmp/sysv-ipc', 'read', key]);
  await applyLimits(b.rt, a, { ipc: { shmAll: 4 << 20 } });
  const afterRaise = await b.rt.execCapture(a, ['/tmp/sysv-ipc', 'shm', '0x600e', String(2 << 20)]);
  return [
    {
      experiment: '7 ipc',
      setting: `two contexts create shm + semaphore set + message queue with key ${key}`,
      measured: ok ? 'both created and each reads its own value' : `conflict: ${ca.trim()} | ${cc.trim()} | ${ra.trim()} | ${rc.trim()}`,
      expected: 'no conflict',
      verdict: ok ? 'pass' : 'fail',
      guarantee: guard('as expected', ok),
      data: { ok },
    },
    {
      experiment: '7 ipc',
      setting: '--shm-all 1M in one context: a 2 MiB segment in each',
      measured: `over its limit: ${overA.code === 0 ? 'created (!)' : (overA.stdout.match(/: ([^(]+)\(/)?.[1]?.trim() ?? `exit ${overA.code}`)}; other: ${overB.code === 0 ? 'created' : 'failed'}; the limited one still reads: ${stillA.code === 0 ? 'yes' : 'no'}`,
      expected: 'error in the limited context only',
      verdict: overA.code !== 0 && overB.code === 0 && stillA.code === 0 ? 'pass' : 'fail',
      guarantee: guard('as expected', overA.code !== 0 && overB.code === 0 && stillA.code === 0),
      data: { limitedExit: overA.code, otherExit: overB.code },
    },
    {
      experiment: '7 ipc',
      setting: 'paene limit --shm-all 4M, live',
      measured: afterRaise.code === 0 ? '2 MiB segment created' : `failed: ${afterRaise.stdout.trim()}`,
      expected: 'created',
      verdict: afterRaise.code === 0 ? 'pass' : 'fail',
      guarantee: guard('as expected', afterRaise.code === 0),
      data: { exit: afterRaise.code },
    },
  ];
}

const RUNNERS: Record<ExperimentName, (b: Bench, o: IsoOptions) => Promise<ResultRow[]>> = {
  'cpu-cap': cpuCap,
  shares,
  'nine-hogs': nineHogs,
  'fork-bomb': forkBomb,
  'memory-hog': memoryHog,
  'disk-hog': diskHog,
  ipc,
};

/** Busy share of all CPUs (0..1) over `ms`, from /proc/stat: the host's own load while no experiment runs. */
async function hostBusy(ms = 500): Promise<number> {
  const read = () => {
    const f = (safeRead('/proc/stat').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { idle, total: f.reduce((a, x) => a + x, 0) };
  };
  const a = read();
  await sleep(ms);
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}

/** Above this idle-time load (a third of the machine busy with work that is not ours) a missed bar is 'noisy'. */
export const NOISY_HOST_BUSY = 0.33;

/**
 * Runs one experiment; its contexts are destroyed whatever happens. The
 * host's load is sampled before and after: a paper-grade miss while the host
 * was busy with other work is reported as 'noisy' (rerun), not 'fail'.
 */
export async function runExperiment(rt: Runtime, which: ExperimentName, o: IsoOptions = {}): Promise<ResultRow[]> {
  const log = o.log ?? (() => undefined);
  const b = new Bench(rt, o.prefix ?? 'iso', log);
  const before = await hostBusy();
  let rows: ResultRow[];
  try {
    rows = await RUNNERS[which](b, o);
  } finally {
    await b.close();
  }
  const after = await hostBusy();
  const busy = Math.max(before, after);
  return rows.map((r) => ({
    ...r,
    verdict: r.verdict === 'fail' && busy > NOISY_HOST_BUSY ? 'noisy' : r.verdict,
    data: { ...r.data, hostBusyBefore: r1(before * 100), hostBusyAfter: r1(after * 100) },
  }));
}

/** Runs the experiments in order; a failing one becomes a 'fail' row and the rest still run. */
export async function runIsolationSuite(rt: Runtime, o: IsoOptions & { only?: ExperimentName[] } = {}): Promise<ResultRow[]> {
  const log = o.log ?? (() => undefined);
  const rows: ResultRow[] = [];
  for (const e of o.only ?? EXPERIMENTS) {
    log(`running ${e} ...`);
    const t0 = performance.now();
    try {
      const r = await runExperiment(rt, e, o);
      rows.push(...r);
      for (const row of r) log(`  ${row.verdict.padEnd(4)} ${row.setting}: ${row.measured}`);
    } catch (err) {
      rows.push({
        experiment: e,
        setting: 'the experiment itself',
        measured: `error: ${(err as Error).message}`,
        expected: 'runs',
        verdict: 'fail',
        guarantee: guard('runs', false),
        data: {},
      });
      log(`  fail ${e}: ${(err as Error).message}`);
    }
    log(`  (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return rows;
}
