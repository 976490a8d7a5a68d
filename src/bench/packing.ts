// `paene bench packing`: the paper's phone-booth experiment. Contexts are
// started one after another, each running busybox httpd on its own loopback
// address; after each start the servers are checked over HTTP. It stops at
// --max, at the memory floor, after the time budget, or at the first failure.
//
// Two variants:
//   shared        every context's overlay has the one shared base image as
//                 its lower layer (unmodified files keep one inode: one copy
//                 on disk and in the page cache);
//   limited       as shared, with a 64 MiB memory limit per context: each
//                 has a memory cgroup of its own, and so its share of the
//                 kernel's per-memcg, per-shrinker state (the n² term);
//   private-copy  each context gets its own full copy of the base rootfs
//                 (cp -a into the benchmark's scratch dir), as a hypervisor
//                 guest has its own disk. The copy's pages are dropped from
//                 the page cache after copying (fdatasync + FADV_DONTNEED), so
//                 the pages a context uses are read in by, and charged to, it.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import { nativePath } from '../kernel/helper.js';
import { defaultPolicy, openImageStore, storeImageSource } from '../runtime/open.js';
import { keepRootOffEgress } from '../runtime/network.js';
import { type ImageSource, Runtime } from '../runtime/runtime.js';
import { Cleanup, type MachineFacts, dirBytes, httpGet, machineFacts, median, meminfo, percentile, round, run, slope } from './common.js';
import { DEFAULT_IMAGE } from '../image/store.js';
import { allPids, processMemory } from '../kernel/procfs.js';
import { type KmemBreakdown, kmemBreakdown, kmemSnapshot } from './kmem.js';

export type Variant = 'shared' | 'limited' | 'private-copy';

/** The memory limit of the `limited` variant: each context gets a memory cgroup of its own. */
export const LIMITED_MEMORY = 64 * 2 ** 20;

/** Contexts in each end segment whose marginal cost the benchmark compares (first vs last). */
export const SEGMENT = 1000;

export interface PackingOptions {
  /** scratch directory: the benchmark's own state root (and private copies); removed at the end unless keepDir */
  dir: string;
  keepDir?: boolean;
  variants: Variant[];
  /** contexts to pack per variant */
  max: number;
  /** stop when MemAvailable falls below this */
  minFreeBytes: number;
  /** time budget per variant (ms); reaching it ends that variant */
  timeBudgetMs: number;
  /** check every server after each start while n <= this; beyond, the newest each time and all every checkEvery */
  fullCheckUpTo: number;
  checkEvery: number;
  /** sample memory every this many contexts (and at 0 and at the end) */
  sampleEvery: number;
  /**
   * how each context's httpd runs: `main`, as its main process (started by its init at start, restarted by
   * --restart always, its output in the host-side log); `exec`, started by an exec after start (nothing watches it)
   */
  service?: 'main' | 'exec';
  log?: (s: string) => void;
  progress?: (variant: Variant, n: number, max: number, detail: string) => void;
}

export interface MemorySample {
  contexts: number;
  memAvailable: number;
  memFree: number;
  slab: number;
  cached: number;
  /** HTTP answer latency over a full sweep at this count (ms), when one ran */
  http?: { p50: number; p99: number; answered: number };
}

export interface VariantResult {
  variant: Variant;
  packed: number;
  stopReason: string;
  /** rt.create (ms) */
  createMs: { median: number; p99: number };
  /** rt.start: namespaces, cgroups, overlay, init ready (ms) */
  startMs: { median: number; p99: number };
  /** create + (copy) + start + httpd up and answering (ms) */
  readyMs: { median: number; p99: number };
  /** private-copy only: cp -a + page-cache drop (ms) */
  copyMs?: { median: number; p99: number };
  wallSeconds: number;
  httpChecks: number;
  fullChecks: number;
  memory: {
    /** (MemAvailable before - after) / contexts */
    marginalAvailablePerContext: number;
    /** (MemFree before - after) / contexts: includes page cache */
    marginalFreePerContext: number;
    marginalSlabPerContext: number;
    /** least-squares slope of MemTotal-MemAvailable over the samples */
    slopeAvailablePerContext: number;
    /** median of each context's memory cgroup usage at the end */
    cgroupMedianPerContext: number;
    cgroupMeanPerContext: number;
    /** marginal MemAvailable per context over the first and the last SEGMENT contexts (or the first and last tenth) */
    firstSegment: SegmentCost;
    lastSegment: SegmentCost;
    /** lastSegment / firstSegment: 1 means a flat cost */
    growth: number;
    /** why growth is not to be trusted, if a segment saw the host free slab from before the run */
    growthNoisy?: string;
    /** each KiB's owner: kernel objects per context, over the whole run */
    kernel: KmemBreakdown;
    /** the processes of a context, medians over a sample of contexts (bytes) */
    processes: { comm: string; rss: number; pss: number }[];
  };
  /** create/start ms at the first and last SEGMENT contexts (flat: within 1.5x) */
  createFirstLast: { first: number; last: number };
  startFirstLast: { first: number; last: number };
  /** the last full sweep: every context asked once */
  finalSweep: { answered: number; of: number; p50: number; p99: number };
  /** destroys per second in the teardown */
  destroyPerSecond: number;
  /** after the teardown (and 2 s to settle; caches not dropped): what did not come back, in bytes and as a share of MemTotal */
  afterCleanup: { memAvailableLost: number; slabLost: number; shareOfTotal: number };
  disk: {
    /** median bytes in a context's upper dir */
    upperMedianPerContext: number;
    /** private-copy: bytes of its own copy of the image (plus upper) */
    privateMedianPerContext: number;
    imageBytes: number;
  };
  samples: MemorySample[];
}

export interface PackingResult {
  benchmark: 'packing';
  machine: MachineFacts;
  options: {
    max: number;
    minFreeBytes: number;
    timeBudgetMs: number;
    fullCheckUpTo: number;
    checkEvery: number;
    variants: Variant[];
    service: 'main' | 'exec';
  };
  checkPolicy: string;
  /** how a context's root became its namespace's root: 'staged', or 'pivot_root: WHY' (a walk of every task per start) */
  rootSwitch: string;
  variants: VariantResult[];
  cleanup: { errors: string[] };
}

const HTTP_PORT = 8080;

/**
 * Each context serves on the address paene assigned it from the root's
 * shared pool (a 127.0.0.0/8 block by default): its own address, no port
 * clashes, enforced by its BPF address wall.
 */
const addresses = new Map<string, string>();
function addressOf(name: string): string {
  const a = addresses.get(name);
  if (!a) throw new Error(`no address known for ${name}`);
  return a;
}

export function contextName(variant: Variant, i: number): string {
  return `bench-${variant === 'shared' ? 's' : 'p'}-${String(i).padStart(5, '0')}`;
}

function stats(xs: number[]): { median: number; p99: number } {
  return { median: round(median(xs)), p99: round(percentile(xs, 99)) };
}

interface Sweep {
  answered: number;
  of: number;
  /** answer latency of each server that answered (ms) */
  latencies: number[];
  failure?: string;
}

/**
 * Asks servers with bounded concurrency. By default it stops at the first
 * failure; with `all` it asks every one (the final sweep's answer rate).
 */
async function checkServers(indices: number[], names: string[], concurrency = 32, all = false): Promise<Sweep> {
  let next = 0;
  const out: Sweep = { answered: 0, of: indices.length, latencies: [] };
  const worker = async () => {
    while ((all || out.failure === undefined) && next < indices.length) {
      const i = indices[next++];
      const t = performance.now();
      try {
        const body = await httpGet(addressOf(names[i] as string), HTTP_PORT, 5000);
        if (!body.includes(names[i])) out.failure ??= `server of ${names[i]} answered with the wrong page: ${body.slice(0, 60)}`;
        else {
          out.answered++;
          out.latencies.push(performance.now() - t);
        }
      } catch (e) {
        out.failure ??= `server of ${names[i]} (${addressOf(names[i] as string)}:${HTTP_PORT}) does not answer: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, indices.length) }, worker));
  return out;
}

function cgroupUsage(rt: Runtime, name: string): number {
  return rt.memoryOf(name);
}

function withHttp(s: MemorySample, sweep: Sweep | undefined): MemorySample {
  if (!sweep || sweep.latencies.length === 0) return s;
  return {
    ...s,
    http: { p50: round(percentile(sweep.latencies, 50), 2), p99: round(percentile(sweep.latencies, 99), 2), answered: sweep.answered },
  };
}

function sample(n: number): MemorySample {
  const m = meminfo();
  return { contexts: n, memAvailable: m.MemAvailable, memFree: m.MemFree, slab: m.Slab, cached: m.Cached };
}

/** Marginal MemAvailable per context between the samples nearest to `from` and `to` contexts. */
export interface SegmentCost {
  from: number;
  to: number;
  perContext: number;
  /** slab the host freed between samples of the segment while contexts were added (bytes): memory of before the run */
  slabReleased: number;
}

export function segmentCost(samples: MemorySample[], from: number, to: number): SegmentCost {
  const near = (n: number) =>
    samples.reduce((best, x) => (Math.abs(x.contexts - n) < Math.abs(best.contexts - n) ? x : best), samples[0] as MemorySample);
  const a = near(from);
  const b = near(to);
  const per = b.contexts > a.contexts ? Math.round((a.memAvailable - b.memAvailable) / (b.contexts - a.contexts)) : NaN;
  let slabReleased = 0;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i].contexts > a.contexts && samples[i].contexts <= b.contexts)
      slabReleased += Math.max(0, samples[i - 1].slab - samples[i].slab);
  }
  return { from: a.contexts, to: b.contexts, perContext: per, slabReleased };
}

/**
 * Why the growth figure is noise, if it is. Both make the first contexts
 * look cheaper than they are, from what the host held before the run:
 * - slab that fell within a segment (contexts only add slab): a teardown's
 *   objects freed late; more than a twentieth of the segment's cost counts;
 * - free objects in slabs the caches already held at the start (a run
 *   before left them): the first contexts fill those without new pages;
 *   more than a tenth of the first segment's cost counts.
 */
export function growthNoise(first: SegmentCost, last: SegmentCost, slabFreeAtStart = 0): string | undefined {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  for (const [what, s] of [
    ['first', first],
    ['last', last],
  ] as const) {
    const cost = s.perContext * (s.to - s.from);
    if (s.slabReleased > 0.05 * Math.abs(cost)) {
      return `noisy: the host freed ${mib(s.slabReleased)} of slab from before the run within the ${what} segment (${s.from}-${s.to}); rerun on a settled host`;
    }
  }
  const firstCost = first.perContext * (first.to - first.from);
  if (slabFreeAtStart > 0.1 * Math.abs(firstCost)) {
    return `noisy: the host's slab caches held ${mib(slabFreeAtStart)} of free objects at the start, which the first contexts fill without new pages (the first segment cost ${mib(firstCost)}); compare with a later segment, or rerun on a freshly booted host`;
  }
  return undefined;
}

/** The end segments compared for flatness: SEGMENT contexts, or a tenth of a smaller run. */
export function segmentLength(packed: number): number {
  return packed >= 4 * SEGMENT ? SEGMENT : Math.max(1, Math.floor(packed / 10));
}

/** Medians per process name over a sample of contexts (an init, an httpd, ...). */
function processBreakdown(rt: Runtime, names: string[], sampleSize = 20): { comm: string; rss: number; pss: number }[] {
  const by = new Map<string, { rss: number[]; pss: number[] }>();
  const step = Math.max(1, Math.floor(names.length / sampleSize));
  const loggers = logWriters(rt);
  for (let i = 0; i < names.length; i += step) {
    // its processes, and its log writer on the host (outside its cgroup, but its cost all the same)
    const logger = loggers.get(names[i] as string);
    for (const pid of [...rt.cgroupOf(names[i] as string).pids(), ...(logger ? [logger] : [])]) {
      const m = processMemory(pid);
      if (!m) continue;
      const e = by.get(m.comm) ?? { rss: [], pss: [] };
      e.rss.push(m.rss);
      e.pss.push(m.pss);
      by.set(m.comm, e);
    }
  }
  return [...by].map(([comm, e]) => ({ comm, rss: round(median(e.rss), 0), pss: round(median(e.pss), 0) }));
}

/** Each context's paene-log (the host-side writer of its main process's log): by the log directory it holds open. */
function logWriters(rt: Runtime): Map<string, number> {
  const out = new Map<string, number>();
  const prefix = `${rt.layout.contextsDir}/`;
  for (const pid of allPids()) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'paene-log') continue;
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith(prefix) && target.endsWith('/log')) out.set(target.slice(prefix.length, -'/log'.length), pid);
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Image source: `base` from the store, `bench-copy-*` from the private copies. */
class BenchImages implements ImageSource {
  readonly copies = new Map<string, string>();
  constructor(private readonly store: ImageSource) {}
  async rootfsOf(image: string): Promise<string> {
    const c = this.copies.get(image);
    return c ?? this.store.rootfsOf(image);
  }
}

async function destroyAll(rt: Runtime, names: string[], concurrency = 4): Promise<string[]> {
  const errors: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const n = names[next++];
      if (!rt.store.exists(n)) continue;
      try {
        await rt.destroy(n, { force: true });
      } catch (e) {
        if (!rt.store.exists(n)) continue; // removed meanwhile (by the Ctrl-C cleanup)
        errors.push(`destroy ${n}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return errors;
}

export function checkPolicyText(o: Pick<PackingOptions, 'fullCheckUpTo' | 'checkEvery'>): string {
  return (
    `after each start, every running server is checked over HTTP while there are at most ${o.fullCheckUpTo} contexts; ` +
    `beyond that the newest server after each start and all of them every ${o.checkEvery} starts and at the end`
  );
}

export async function runPacking(o: PackingOptions): Promise<PackingResult> {
  const log = o.log ?? (() => undefined);
  const cleanup = new Cleanup(log);
  fs.mkdirSync(o.dir, { recursive: true });
  const stateRoot = path.join(o.dir, 'state');
  keepRootOffEgress(stateRoot); // nothing added to the host's network
  const copiesDir = path.join(o.dir, 'copies');
  const images = new BenchImages(storeImageSource(openImageStore(stateRoot)));
  const rt = new Runtime({ root: stateRoot, images, policy: defaultPolicy });
  const allNames: string[] = [];
  cleanup.add('remove the scratch directory', () => {
    if (!o.keepDir) fs.rmSync(o.dir, { recursive: true, force: true });
  });
  cleanup.add('stop the monitor', () => rt.shutdownMonitor());
  cleanup.add('destroy every context', async () => {
    const errs = await destroyAll(rt, rt.store.names());
    if (errs.length) throw new Error(errs.join('; '));
  });
  const results: VariantResult[] = [];
  let cleanupErrors: string[] = [];
  let rootSwitch = 'unknown';
  try {
    const rs = await rt.monitor.rootSwitch();
    rootSwitch = rs.staged ? 'staged' : `pivot_root: ${rs.why}`;
    const baseRootfs = await images.rootfsOf(DEFAULT_IMAGE);
    const tool = nativePath('paene-bench');
    const imageBytes = dirBytes(baseRootfs);
    for (const variant of o.variants) {
      log(`packing, ${variant} image: up to ${o.max} contexts`);
      const names: string[] = [];
      const createMs: number[] = [];
      const startMs: number[] = [];
      const readyMs: number[] = [];
      const copyMs: number[] = [];
      const samples: MemorySample[] = [];
      let httpChecks = 0;
      let fullChecks = 0;
      let stopReason = `reached --max ${o.max}`;
      // settle, then the baseline
      await new Promise((r) => setTimeout(r, 500));
      samples.push(sample(0));
      const kmemBefore = kmemSnapshot();
      let lastSweep: { n: number; sweep: Sweep } | undefined;
      const t0 = Date.now();
      for (let i = 0; i < o.max; i++) {
        if (cleanup.interrupted) {
          stopReason = 'interrupted';
          break;
        }
        const avail = meminfo().MemAvailable;
        if (avail < o.minFreeBytes) {
          stopReason = `memory floor: MemAvailable ${(avail / 2 ** 20).toFixed(0)} MiB < --min-free ${(o.minFreeBytes / 2 ** 20).toFixed(0)} MiB`;
          break;
        }
        if (Date.now() - t0 > o.timeBudgetMs) {
          stopReason = `time budget of ${(o.timeBudgetMs / 1000).toFixed(0)} s used`;
          break;
        }
        const name = contextName(variant, i);
        names.push(name);
        allNames.push(name);
        const ta = performance.now();
        let image = DEFAULT_IMAGE;
        try {
          if (variant === 'private-copy') {
            const tc = performance.now();
            const copy = path.join(copiesDir, name);
            fs.mkdirSync(copiesDir, { recursive: true });
            const cp = await run('cp', ['-a', baseRootfs, copy]);
            if (cp.code !== 0) throw new Error(`cp -a of the image failed: ${cp.stderr.trim()}`);
            const files = await run('find', [copy, '-type', 'f']);
            const list = files.stdout.split('\n').filter(Boolean);
            for (let k = 0; k < list.length; k += 200) await run(tool, ['dropcache', ...list.slice(k, k + 200)]);
            image = `bench-copy-${String(i).padStart(5, '0')}`;
            images.copies.set(image, copy);
            copyMs.push(performance.now() - tc);
          }
          const tb = performance.now();
          const asMain = (o.service ?? 'main') === 'main';
          const created = await rt.create({
            name,
            image,
            hostname: name,
            ...(variant === 'limited' ? { limits: { memory: LIMITED_MEMORY } } : {}),
            // the main process: httpd in the foreground (-f), so its init supervises it and paene-log keeps its output
            ...(asMain
              ? {
                  main: { argv: ['/bin/sh', '-c', `echo "${name}" > /www/index.html && exec busybox httpd -f -p ${HTTP_PORT} -h /www`] },
                  restart: { mode: 'always' as const },
                }
              : {}),
          });
          addresses.set(name, created.net.addresses[0] as string);
          const tcr = performance.now();
          await rt.start(name);
          const ts = performance.now();
          createMs.push(tcr - tb);
          startMs.push(ts - tcr);
          if (!asMain) {
            const r = await rt.execCapture(
              name,
              ['/bin/sh', '-c', `echo "${name}" > /www/index.html && busybox httpd -p ${addressOf(name)}:${HTTP_PORT} -h /www`],
              { timeoutMs: 10_000 },
            );
            if (r.code !== 0) throw new Error(`httpd did not start (exit ${r.code}): ${r.stderr.trim()}`);
          }
        } catch (e) {
          stopReason = `failure at context ${i + 1}: ${e instanceof Error ? e.message : String(e)}`;
          names.pop();
          allNames.pop();
          if (rt.store.exists(name)) await rt.destroy(name, { force: true }).catch(() => undefined);
          break;
        }
        const n = names.length;
        const full = n <= o.fullCheckUpTo || n % o.checkEvery === 0;
        const toCheck = full ? names.map((_x, k) => k) : [n - 1];
        // the newest may need a moment to bind (httpd daemonizes before listening)
        let failure = (await checkServers([n - 1], names)).failure;
        for (let retry = 0; failure && retry < 20; retry++) {
          await new Promise((r) => setTimeout(r, 25));
          failure = (await checkServers([n - 1], names)).failure;
        }
        readyMs.push(performance.now() - ta);
        if (!failure && full) {
          const sweep = await checkServers(toCheck, names);
          failure = sweep.failure;
          lastSweep = { n, sweep };
        }
        httpChecks += full ? n : 1;
        if (full) fullChecks++;
        if (failure && !cleanup.interrupted) {
          stopReason = `HTTP check failed with ${n} contexts: ${failure}`;
          break;
        }
        if (n % o.sampleEvery === 0) samples.push(withHttp(sample(n), lastSweep?.n === n ? lastSweep.sweep : undefined));
        o.progress?.(variant, n, o.max, `${n} contexts, MemAvailable ${(meminfo().MemAvailable / 2 ** 30).toFixed(2)} GiB`);
      }
      const packed = names.length;
      // a last sweep: every server asked once, whatever the others answer
      const finalSweep = await checkServers(
        names.map((_x, k) => k),
        names,
        32,
        true,
      );
      httpChecks += packed;
      fullChecks++;
      if (finalSweep.failure && !stopReason.startsWith('HTTP'))
        stopReason += `; the final sweep: ${finalSweep.answered} of ${packed} answered (first failure: ${finalSweep.failure})`;
      const wallSeconds = (Date.now() - t0) / 1000;
      if (samples[samples.length - 1].contexts !== packed) samples.push(withHttp(sample(packed), finalSweep));
      const kmemAfter = kmemSnapshot();
      const seg = segmentLength(packed);
      const firstSegment = segmentCost(samples, 0, seg);
      const lastSegment = segmentCost(samples, packed - seg, packed);
      const processes = processBreakdown(rt, names);
      const first = samples[0];
      const last = samples[samples.length - 1];
      const per = (a: number, b: number) => (packed > 0 ? round((a - b) / packed, 0) : NaN);
      const usages = names.map((nm) => cgroupUsage(rt, nm));
      const uppers = names.map((nm) => dirBytes(rt.layout.upperDir(nm)));
      const privates = names.map((nm, k) => (variant === 'private-copy' ? uppers[k] + dirBytes(path.join(copiesDir, nm)) : uppers[k]));
      const res: VariantResult = {
        variant,
        packed,
        stopReason,
        createMs: stats(createMs),
        startMs: stats(startMs),
        readyMs: stats(readyMs),
        ...(variant === 'private-copy' ? { copyMs: stats(copyMs) } : {}),
        wallSeconds: round(wallSeconds, 1),
        httpChecks,
        fullChecks,
        memory: {
          marginalAvailablePerContext: per(first.memAvailable, last.memAvailable),
          marginalFreePerContext: per(first.memFree, last.memFree),
          marginalSlabPerContext: per(last.slab, first.slab),
          slopeAvailablePerContext: round(
            slope(
              samples.map((s) => s.contexts),
              samples.map((s) => -s.memAvailable),
            ),
            0,
          ),
          cgroupMedianPerContext: round(median(usages), 0),
          cgroupMeanPerContext: packed ? round(usages.reduce((a, b) => a + b, 0) / packed, 0) : NaN,
          firstSegment,
          lastSegment,
          growth: round(lastSegment.perContext / firstSegment.perContext, 2),
          growthNoisy: growthNoise(firstSegment, lastSegment, kmemBefore.slabFree),
          kernel: kmemBreakdown(kmemBefore, kmemAfter, packed),
          processes,
        },
        createFirstLast: { first: round(median(createMs.slice(0, seg))), last: round(median(createMs.slice(-seg))) },
        startFirstLast: { first: round(median(startMs.slice(0, seg))), last: round(median(startMs.slice(-seg))) },
        finalSweep: {
          answered: finalSweep.answered,
          of: packed,
          p50: round(percentile(finalSweep.latencies, 50)),
          p99: round(percentile(finalSweep.latencies, 99)),
        },
        destroyPerSecond: NaN,
        afterCleanup: { memAvailableLost: NaN, slabLost: NaN, shareOfTotal: NaN },
        disk: {
          upperMedianPerContext: round(median(uppers), 0),
          privateMedianPerContext: round(median(privates), 0),
          imageBytes,
        },
        samples,
      };
      results.push(res);
      log(`  ${variant}: ${packed} contexts; stopped: ${stopReason}`);
      // tear this variant down before the next one measures
      const td = performance.now();
      const errs = await destroyAll(rt, names);
      res.destroyPerSecond = round(names.length / ((performance.now() - td) / 1000), 1);
      await new Promise((r) => setTimeout(r, 2000));
      const back = sample(0);
      res.afterCleanup = {
        memAvailableLost: first.memAvailable - back.memAvailable,
        slabLost: back.slab - first.slab,
        shareOfTotal: round((first.memAvailable - back.memAvailable) / meminfo().MemTotal, 4),
      };
      if (errs.length) throw new PaeneError('internal', `cleanup after the ${variant} variant failed: ${errs.join('; ')}`);
      fs.rmSync(copiesDir, { recursive: true, force: true });
    }
  } finally {
    cleanupErrors = await cleanup.run();
  }
  return {
    benchmark: 'packing',
    machine: machineFacts(),
    options: {
      max: o.max,
      minFreeBytes: o.minFreeBytes,
      timeBudgetMs: o.timeBudgetMs,
      fullCheckUpTo: o.fullCheckUpTo,
      checkEvery: o.checkEvery,
      variants: o.variants,
      service: o.service ?? 'main',
    },
    checkPolicy: checkPolicyText(o),
    rootSwitch,
    variants: results,
    cleanup: { errors: cleanupErrors },
  };
}
