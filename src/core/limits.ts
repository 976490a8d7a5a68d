// Per-context resource limits: the config shape, the CLI flags, validation
// of config read back from disk, and the exact cgroup files and IPC sysctls
// the kernel adapter writes. Pure.

import { PaeneError } from './errors.js';
import {
  type CpuMode,
  DEFAULT_CPU_SHARE,
  type TokenBucketParams,
  fromPercent,
  rateOf,
  shareWeightOf,
  toCfs,
  toShares,
  validateBucket,
} from './tokenBucket.js';
import {
  formatByteRate,
  formatBytes,
  formatOpsRate,
  formatPercent,
  parseByteRate,
  parseCount,
  parseDuration,
  parseOpsRate,
  parsePercent,
  parseSize,
} from './units.js';

export type CpuLimit = TokenBucketParams;

/**
 * How soon a context's processes get the CPU when they wake, traded against
 * the others (docs/isolation.md):
 *   low     a short EEVDF slice (Linux 6.12+): a waking task preempts a
 *           running one sooner; more switches for itself
 *   normal  the kernel's defaults
 *   batch   SCHED_BATCH: never preempts on wakeup, long slices; for CPU hogs
 *   idle    cpu.idle on its cgroup: runs only when nothing else wants the CPU
 */
export const CPU_LATENCY_CLASSES = ['low', 'normal', 'batch', 'idle'] as const;
export type CpuLatency = (typeof CPU_LATENCY_CLASSES)[number];

/** The custom slice of the `low` class, ns (the kernel takes 0.1-100 ms). */
export const LOW_LATENCY_SLICE_NS = 100_000;
const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** The scheduling policy and slice a class gives each process of the context (what the helper applies). */
export function schedOf(latency: CpuLatency | undefined): { policy: number; sliceNs: number } {
  if (latency === 'low') return { policy: SCHED_OTHER, sliceNs: LOW_LATENCY_SLICE_NS };
  if (latency === 'batch') return { policy: SCHED_BATCH, sliceNs: 0 };
  return { policy: SCHED_OTHER, sliceNs: 0 };
}

export function parseCpuLatency(s: string, what = '--cpu-latency'): CpuLatency {
  const v = s.trim().toLowerCase();
  if (!(CPU_LATENCY_CLASSES as readonly string[]).includes(v)) {
    throw new PaeneError('invalid-argument', `${what}: '${s}' is not a latency class; use ${CPU_LATENCY_CLASSES.join(', ')}`);
  }
  return v as CpuLatency;
}

export interface IoLimits {
  /** bytes per second */
  readBps?: number;
  writeBps?: number;
  /** operations per second */
  readIops?: number;
  writeIops?: number;
  /**
   * bytes a context may read/write above its rate after being idle. The
   * kernel's throttle has no burst setting; this sizes paene's own meter
   * (used where the kernel cannot throttle, e.g. v1 buffered writes).
   */
  burst?: number;
}

/** SEMMSL SEMMNS SEMOPM SEMMNI, as kernel.sem takes them. */
export type SemLimits = [number, number, number, number];

export interface IpcLimits {
  /** kernel.shmmax: bytes per segment */
  shmMax?: number;
  /** kernel.shmall: bytes of shared memory in all (written in pages) */
  shmAll?: number;
  /** kernel.shmmni: number of segments */
  shmIds?: number;
  /** kernel.msgmnb: bytes per message queue */
  msgMax?: number;
  /** kernel.msgmni: number of message queues */
  msgIds?: number;
  sem?: SemLimits;
}

export interface ResourceLimits {
  /** pids.max: the most processes (tasks) in the context */
  nproc?: number;
  /** bytes of memory (RSS + page cache) */
  memory?: number;
  /** bytes of memory + swap together (docker's and v1's meaning); unset = swap not limited separately */
  memorySwap?: number;
  /** the token bucket: a cap in hard mode; in share mode its rate is a weight */
  cpu?: CpuLimit;
  /** relative CPU weight under contention, 1024 = the default (v1 cpu.shares scale) */
  cpuShare?: number;
  /** latency class of its processes (CPU_LATENCY_CLASSES); absent = normal */
  cpuLatency?: CpuLatency;
  io?: IoLimits;
  ipc?: IpcLimits;
}

/**
 * Defaults for a new context. nproc 1024 contains a fork bomb. A process
 * limit alone does not isolate (1024 spinning forkers still compete with the
 * host as 1024 processes), so every context also gets its own CPU group with
 * the default weight: under contention the whole context counts as one
 * nice-0 process against each sibling, however many processes it runs. That
 * is not a cap, so an alone context can still use the whole machine
 * (vserver's density depends on idle guests' CPU going to busy ones). Memory,
 * I/O and IPC are left to the kernel's defaults unless asked for.
 */
export const DEFAULT_LIMITS: ResourceLimits = { nproc: 1024, cpuShare: DEFAULT_CPU_SHARE };

export type CgroupVersion = 'v1' | 'v2';
export interface BlockDevice {
  major: number;
  minor: number;
}
/** One value to write into a context's cgroup. For v1, `controller` names the hierarchy. */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
  /**
   * skip this write if the controller or file is absent: files only some kernels
   * or configs have (swap accounting, burst before 5.14), and writes that only
   * reset a limit nobody set to "unlimited"
   */
  optional?: boolean;
}

/** A change to limits: a field set to null removes that limit ("unlimited"). */
export type LimitsPatch = {
  nproc?: number | null;
  memory?: number | null;
  memorySwap?: number | null;
  /** a partial bucket is merged into the current one */
  cpu?: Partial<CpuLimit> | null;
  cpuShare?: number | null;
  cpuLatency?: CpuLatency | null;
  io?: { [K in keyof IoLimits]?: IoLimits[K] | null } | null;
  ipc?: { [K in keyof IpcLimits]?: IpcLimits[K] | null } | null;
};

// ---------------------------------------------------------------------------
// CLI flags.

export interface LimitFlag {
  flag: string;
  arg: string;
  help: string;
}

/** The flags create/limit accept, for their --help. "unlimited" (or "max", "none") removes a limit. */
export const LIMIT_FLAGS: readonly LimitFlag[] = [
  { flag: 'cpu', arg: 'PCT', help: 'hard CPU cap in percent of one CPU, e.g. 25% (a 100 ms period, bucket of 2 periods)' },
  { flag: 'cpu-share', arg: 'N', help: `relative CPU weight under contention (default ${DEFAULT_CPU_SHARE})` },
  { flag: 'cpu-latency', arg: 'CLASS', help: 'how soon its processes run when they wake: low, normal, batch or idle (docs/isolation.md)' },
  { flag: 'cpu-fill-rate', arg: 'N', help: 'token bucket: tokens (CPU-ms) added every interval' },
  { flag: 'cpu-interval', arg: 'MS', help: 'token bucket: refill interval, e.g. 100ms' },
  { flag: 'cpu-tokens-max', arg: 'N', help: 'token bucket: depth in CPU-ms (the burst after idling)' },
  { flag: 'cpu-tokens-min', arg: 'N', help: 'token bucket: tokens needed to leave hold' },
  { flag: 'cpu-mode', arg: 'MODE', help: 'token bucket: hard (cap) or share (weight only)' },
  { flag: 'io-read', arg: 'RATE', help: 'read bytes/s, e.g. 50MiB/s' },
  { flag: 'io-write', arg: 'RATE', help: 'write bytes/s, e.g. 10MiB/s (buffered writes too)' },
  { flag: 'io-read-ops', arg: 'RATE', help: 'read operations/s, e.g. 500/s' },
  { flag: 'io-write-ops', arg: 'RATE', help: 'write operations/s' },
  { flag: 'io-burst', arg: 'SIZE', help: 'bytes above the rate allowed after idling, e.g. 32MiB' },
  { flag: 'nproc', arg: 'N', help: `most processes in the context (default ${DEFAULT_LIMITS.nproc})` },
  { flag: 'memory', arg: 'SIZE', help: 'memory limit; the OOM killer acts inside the context, e.g. 256M' },
  { flag: 'memory-swap', arg: 'SIZE', help: 'memory + swap limit (equal to --memory: no swap)' },
  { flag: 'shm-max', arg: 'SIZE', help: 'kernel.shmmax: largest shared memory segment' },
  { flag: 'shm-all', arg: 'SIZE', help: 'kernel.shmall: all shared memory together' },
  { flag: 'shm-ids', arg: 'N', help: 'kernel.shmmni: number of shared memory segments' },
  { flag: 'msg-max', arg: 'SIZE', help: 'kernel.msgmnb: bytes per message queue' },
  { flag: 'msg-ids', arg: 'N', help: 'kernel.msgmni: number of message queues' },
  { flag: 'sem', arg: '"MSL MNS OPM MNI"', help: 'kernel.sem: semaphores per set, in all, ops per call, sets' },
];
const FLAG_NAMES = new Set(LIMIT_FLAGS.map((f) => f.flag));

const UNLIMITED = /^(unlimited|max|none|-1)$/i;
const INT_MAX = 2 ** 31 - 1;

/** The kernel's ranges, named once: flag parsing and config validation both use them. */
export const RANGES = {
  nproc: [1, 4_194_304], // pids.max: PID_MAX_LIMIT
  cpuShare: [2, 262_144], // cpu.shares
  shmIds: [1, 32_768], // kernel.shmmni: IPCMNI
  msgIds: [0, 32_768], // kernel.msgmni
  msgMax: [0, INT_MAX], // kernel.msgmnb
  semMni: [0, 32_768],
  semInt: [0, INT_MAX],
} as const satisfies Record<string, readonly [number, number]>;

function flagKey(k: string): string {
  return k.replace(/^-+/, '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * Limit flags (keys as "--cpu-fill-rate", "cpu-fill-rate" or commander's
 * "cpuFillRate") → a patch. Keys that are not limit flags are ignored, so a
 * whole options object can be passed. "unlimited"/"max"/"none" → null.
 */
export function parseLimitFlags(flags: Record<string, string | undefined>): LimitsPatch {
  const f: Record<string, string> = {};
  for (const [k, v] of Object.entries(flags)) {
    const key = flagKey(k);
    if (v !== undefined && FLAG_NAMES.has(key)) f[key] = String(v);
  }
  const p: LimitsPatch = {};
  const unl = (k: string) => f[k] !== undefined && UNLIMITED.test(f[k].trim());
  const get = <T>(k: string, parse: (s: string, what: string) => T): T | null | undefined =>
    f[k] === undefined ? undefined : unl(k) ? null : parse(f[k], `--${k}`);

  // CPU: --cpu sets a whole bucket; the --cpu-* flags then override its fields.
  const cpuFields = ['cpu-fill-rate', 'cpu-interval', 'cpu-tokens-max', 'cpu-tokens-min', 'cpu-mode'].filter((k) => f[k] !== undefined);
  if (f.cpu !== undefined && unl('cpu')) {
    if (cpuFields.length > 0) throw new PaeneError('invalid-argument', `--cpu ${f.cpu} removes the CPU cap; it cannot be combined with --${cpuFields.join(', --')}`);
    p.cpu = null;
  } else if (f.cpu !== undefined || cpuFields.length > 0) {
    const cpu: Partial<CpuLimit> = f.cpu !== undefined ? fromPercent(parsePercent(f.cpu, '--cpu')) : {};
    if (f['cpu-fill-rate'] !== undefined) cpu.fillRate = positiveNumber(f['cpu-fill-rate'], '--cpu-fill-rate');
    if (f['cpu-interval'] !== undefined) cpu.interval = positiveMs(f['cpu-interval'], '--cpu-interval');
    if (f['cpu-tokens-max'] !== undefined) cpu.tokensMax = positiveNumber(f['cpu-tokens-max'], '--cpu-tokens-max');
    if (f['cpu-tokens-min'] !== undefined) cpu.tokensMin = positiveNumber(f['cpu-tokens-min'], '--cpu-tokens-min');
    if (f['cpu-mode'] !== undefined) cpu.mode = parseMode(f['cpu-mode']);
    p.cpu = cpu;
  }
  const share = get('cpu-share', (s, w) => parseCount(s, w, ...RANGES.cpuShare));
  if (share !== undefined) p.cpuShare = share;
  const latency = get('cpu-latency', parseCpuLatency);
  if (latency !== undefined) p.cpuLatency = latency;

  const io: NonNullable<LimitsPatch['io']> = {};
  const ioSet = <K extends keyof IoLimits>(k: K, v: IoLimits[K] | null | undefined) => {
    if (v !== undefined) io[k] = v;
  };
  ioSet('readBps', get('io-read', parseByteRate));
  ioSet('writeBps', get('io-write', parseByteRate));
  ioSet('readIops', get('io-read-ops', parseOpsRate));
  ioSet('writeIops', get('io-write-ops', parseOpsRate));
  ioSet('burst', get('io-burst', parseSize));
  for (const k of ['readBps', 'writeBps', 'readIops', 'writeIops'] as const) {
    if (io[k] === 0) throw new PaeneError('invalid-argument', `--io-${k.startsWith('read') ? 'read' : 'write'}${k.endsWith('Iops') ? '-ops' : ''}: a rate of 0 would stop all I/O; use 'unlimited' to remove the limit`);
  }
  if (Object.keys(io).length > 0) p.io = io;

  const nproc = get('nproc', (s, w) => parseCount(s, w, ...RANGES.nproc));
  if (nproc !== undefined) p.nproc = nproc;
  const mem = get('memory', parseSize);
  if (mem !== undefined) p.memory = mem;
  const swap = get('memory-swap', parseSize);
  if (swap !== undefined) p.memorySwap = swap;

  const ipc: NonNullable<LimitsPatch['ipc']> = {};
  const ipcSet = <K extends keyof IpcLimits>(k: K, v: IpcLimits[K] | null | undefined) => {
    if (v !== undefined) ipc[k] = v;
  };
  ipcSet('shmMax', get('shm-max', parseSize));
  ipcSet('shmAll', get('shm-all', parseSize));
  ipcSet('shmIds', get('shm-ids', (s, w) => parseCount(s, w, ...RANGES.shmIds)));
  ipcSet('msgMax', get('msg-max', (s, w) => checkRange(parseSize(s, w), w, ...RANGES.msgMax)));
  ipcSet('msgIds', get('msg-ids', (s, w) => parseCount(s, w, ...RANGES.msgIds)));
  ipcSet('sem', get('sem', parseSem));
  if (Object.keys(ipc).length > 0) p.ipc = ipc;
  return p;
}

function positiveNumber(s: string, what: string): number {
  const t = s.trim();
  const n = /^(\d+(\.\d+)?|\.\d+)$/.test(t) ? Number(t) : NaN;
  if (!(n > 0)) throw new PaeneError('invalid-argument', `invalid ${what} '${s}': expected a positive number`);
  return n;
}

function positiveMs(s: string, what: string): number {
  const n = parseDuration(s, what);
  if (!(n > 0)) throw new PaeneError('invalid-argument', `invalid ${what} '${s}': must be above 0`);
  return n;
}

function parseMode(s: string): CpuMode {
  const m = s.trim().toLowerCase();
  // vserver called share mode "prio" (idle time only biases priority).
  if (m === 'hard') return 'hard';
  if (m === 'share' || m === 'prio') return 'share';
  throw new PaeneError('invalid-argument', `invalid --cpu-mode '${s}': use hard or share`);
}

function checkRange(n: number, what: string, min: number, max: number): number {
  if (n < min || n > max) throw new PaeneError('invalid-argument', `invalid ${what} ${n}: must be from ${min} to ${max}`);
  return n;
}

/** "250 32000 32 128" → [250, 32000, 32, 128] */
export function parseSem(s: string, what = '--sem'): SemLimits {
  const parts = s.trim().split(/[\s,]+/);
  if (parts.length !== 4 || !parts.every((x) => /^\d+$/.test(x))) {
    throw new PaeneError('invalid-argument', `invalid ${what} '${s}': expected four whole numbers "SEMMSL SEMMNS SEMOPM SEMMNI", e.g. "250 32000 32 128"`);
  }
  return checkSem(parts.map(Number) as SemLimits, what);
}

function checkSem(v: SemLimits, what: string): SemLimits {
  const [msl, mns, opm, mni] = v;
  // ipc/sem.c: SEMMSL and SEMOPM up to 65536 (SEMMSL_FAST...), SEMMNI up to IPCMNI (32768).
  if (msl < 1 || msl > 65_536) throw new PaeneError('invalid-argument', `${what}: SEMMSL ${msl} must be from 1 to 65536`);
  if (mns < 1 || mns > INT_MAX) throw new PaeneError('invalid-argument', `${what}: SEMMNS ${mns} must be from 1 to ${INT_MAX}`);
  if (opm < 1 || opm > 65_536) throw new PaeneError('invalid-argument', `${what}: SEMOPM ${opm} must be from 1 to 65536`);
  if (mni < RANGES.semMni[0] || mni > RANGES.semMni[1]) throw new PaeneError('invalid-argument', `${what}: SEMMNI ${mni} must be from ${RANGES.semMni[0]} to ${RANGES.semMni[1]}`);
  return v;
}

// ---------------------------------------------------------------------------
// Merging and validation.

/** Applies a patch; null removes a limit. The result is validated. */
export function mergeLimits(base: ResourceLimits, patch: LimitsPatch): ResourceLimits {
  const out: ResourceLimits = structuredClone(base);
  const scalar = <K extends 'nproc' | 'memory' | 'memorySwap' | 'cpuShare'>(k: K) => {
    const v = patch[k];
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = v;
  };
  scalar('nproc');
  scalar('memory');
  scalar('memorySwap');
  scalar('cpuShare');
  if (patch.cpuLatency === null) delete out.cpuLatency;
  else if (patch.cpuLatency !== undefined) out.cpuLatency = patch.cpuLatency;
  if (patch.cpu === null) delete out.cpu;
  else if (patch.cpu !== undefined) {
    const merged = { ...(out.cpu ?? {}), ...patch.cpu };
    if (merged.fillRate === undefined || merged.interval === undefined) {
      throw new PaeneError('invalid-argument', `incomplete CPU token bucket: give --cpu PCT, or both --cpu-fill-rate and --cpu-interval`);
    }
    // Only the rate given: a bucket as --cpu would size it (two 100 ms periods, at least two intervals).
    const per100 = rateOf({ fillRate: merged.fillRate, interval: merged.interval }) * 100;
    merged.tokensMax ??= Math.max(2 * merged.fillRate, 2 * per100);
    merged.tokensMin ??= Math.min(merged.tokensMax, Math.max(merged.fillRate, per100));
    merged.mode ??= 'hard';
    out.cpu = merged as CpuLimit;
  }
  for (const group of ['io', 'ipc'] as const) {
    const pg = patch[group];
    if (pg === null) delete out[group];
    else if (pg !== undefined) {
      const g: Record<string, unknown> = { ...(out[group] ?? {}) };
      for (const [k, v] of Object.entries(pg)) {
        if (v === null) delete g[k];
        else if (v !== undefined) g[k] = v;
      }
      if (Object.keys(g).length === 0) delete out[group];
      else (out as Record<string, unknown>)[group] = g;
    }
  }
  return validateLimits(out);
}

const TOP_KEYS = ['nproc', 'memory', 'memorySwap', 'cpu', 'cpuShare', 'cpuLatency', 'io', 'ipc'];
const IO_KEYS = ['readBps', 'writeBps', 'readIops', 'writeIops', 'burst'];
const IPC_KEYS = ['shmMax', 'shmAll', 'shmIds', 'msgMax', 'msgIds', 'sem'];

function wholeIn(v: unknown, what: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new PaeneError('invalid-argument', `${what}: must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function objectWith(x: unknown, what: string, keys: string[]): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new PaeneError('invalid-argument', `${what}: must be an object`);
  for (const k of Object.keys(x)) {
    if (!keys.includes(k)) throw new PaeneError('invalid-argument', `${what}: unknown field '${k}' (expected ${keys.join(', ')})`);
  }
  return x as Record<string, unknown>;
}

/** For limits read from disk (and after merging): strict, each message names the field. Absent → defaults. */
export function validateLimits(x: unknown): ResourceLimits {
  if (x === undefined || x === null) return structuredClone(DEFAULT_LIMITS);
  const o = objectWith(x, 'limits', TOP_KEYS);
  const out: ResourceLimits = {};
  if (o.nproc !== undefined) out.nproc = wholeIn(o.nproc, 'limits.nproc', ...RANGES.nproc);
  if (o.memory !== undefined) out.memory = wholeIn(o.memory, 'limits.memory', 1 << 20);
  if (o.memorySwap !== undefined) {
    out.memorySwap = wholeIn(o.memorySwap, 'limits.memorySwap', 1 << 20);
    if (out.memory === undefined) throw new PaeneError('invalid-argument', `limits.memorySwap needs limits.memory (it is memory + swap together)`);
    if (out.memorySwap < out.memory) {
      throw new PaeneError('invalid-argument', `limits.memorySwap (${formatBytes(out.memorySwap)}) must be at least limits.memory (${formatBytes(out.memory)}): it counts memory + swap together`);
    }
  }
  if (o.cpu !== undefined) out.cpu = validateBucket(o.cpu, 'limits.cpu');
  if (o.cpuShare !== undefined) out.cpuShare = wholeIn(o.cpuShare, 'limits.cpuShare', ...RANGES.cpuShare);
  if (o.cpuLatency !== undefined) out.cpuLatency = parseCpuLatency(String(o.cpuLatency), 'limits.cpuLatency');
  if (o.io !== undefined) {
    const io = objectWith(o.io, 'limits.io', IO_KEYS);
    const r: IoLimits = {};
    for (const k of IO_KEYS as (keyof IoLimits)[]) if (io[k] !== undefined) r[k] = wholeIn(io[k], `limits.io.${k}`, k === 'burst' ? 0 : 1);
    out.io = r;
  }
  if (o.ipc !== undefined) {
    const ipc = objectWith(o.ipc, 'limits.ipc', IPC_KEYS);
    const r: IpcLimits = {};
    if (ipc.shmMax !== undefined) r.shmMax = wholeIn(ipc.shmMax, 'limits.ipc.shmMax', 1);
    if (ipc.shmAll !== undefined) r.shmAll = wholeIn(ipc.shmAll, 'limits.ipc.shmAll', 1);
    if (ipc.shmIds !== undefined) r.shmIds = wholeIn(ipc.shmIds, 'limits.ipc.shmIds', ...RANGES.shmIds);
    if (ipc.msgMax !== undefined) r.msgMax = wholeIn(ipc.msgMax, 'limits.ipc.msgMax', ...RANGES.msgMax);
    if (ipc.msgIds !== undefined) r.msgIds = wholeIn(ipc.msgIds, 'limits.ipc.msgIds', ...RANGES.msgIds);
    if (ipc.sem !== undefined) {
      if (!Array.isArray(ipc.sem) || ipc.sem.length !== 4) throw new PaeneError('invalid-argument', `limits.ipc.sem: must be [SEMMSL, SEMMNS, SEMOPM, SEMMNI]`);
      r.sem = checkSem(ipc.sem.map((v, i) => wholeIn(v, `limits.ipc.sem[${i}]`, ...RANGES.semInt)) as SemLimits, 'limits.ipc.sem');
    }
    out.ipc = r;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Kernel writes.

/** The share weight in effect: explicit cpuShare, else a share-mode bucket's rate, else the default. */
export function effectiveShare(limits: ResourceLimits): number {
  if (limits.cpuShare !== undefined) return limits.cpuShare;
  if (limits.cpu?.mode === 'share') return shareWeightOf(limits.cpu);
  return DEFAULT_CPU_SHARE;
}

/**
 * Every file the limits control, in an order the kernel accepts whatever the
 * current values are. An absent limit writes the "unlimited" value (-1 or
 * max), so applying a changed config live also removes limits. Ordering:
 * - CPU: burst ≤ quota is checked on every write of either (with the other's
 *   current value), so burst goes to 0 first, then the quota, then the burst.
 *   v1 also drops the quota before changing the period.
 * - v1 memory: memsw must stay ≥ limit at every step; it is lifted to
 *   unlimited first, then the limit is set, then memsw.
 * - I/O: one line per device; v1 "MAJ:MIN 0" removes a rule.
 */
export function cgroupWrites(limits: ResourceLimits, version: CgroupVersion, devices: BlockDevice[]): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const hard = limits.cpu?.mode === 'hard' ? toCfs(limits.cpu) : undefined;
  const share = toShares(effectiveShare(limits));
  const io = limits.io ?? {};
  const dev = (d: BlockDevice) => `${d.major}:${d.minor}`;
  const pids: CgroupWrite = limits.nproc === undefined ? { controller: 'pids', file: 'pids.max', value: 'max', optional: true } : { controller: 'pids', file: 'pids.max', value: String(limits.nproc) };
  if (version === 'v1') {
    w.push({ controller: 'cpu', file: 'cpu.cfs_burst_us', value: '0', optional: true });
    w.push({ controller: 'cpu', file: 'cpu.cfs_quota_us', value: '-1', optional: true });
    if (hard) {
      w.push({ controller: 'cpu', file: 'cpu.cfs_period_us', value: String(hard.periodUs) });
      w.push({ controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(hard.quotaUs) });
      if (hard.burstUs > 0) w.push({ controller: 'cpu', file: 'cpu.cfs_burst_us', value: String(hard.burstUs), optional: true });
    }
    // An idle group refuses a weight: leave idle first, set the weight, enter idle last.
    w.push({ controller: 'cpu', file: 'cpu.idle', value: '0', optional: true });
    w.push({ controller: 'cpu', file: 'cpu.shares', value: String(share.shares) });
    if (limits.cpuLatency === 'idle') w.push({ controller: 'cpu', file: 'cpu.idle', value: '1' });
    w.push(pids);
    w.push({ controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: '-1', optional: true });
    w.push(limits.memory === undefined ? { controller: 'memory', file: 'memory.limit_in_bytes', value: '-1', optional: true } : { controller: 'memory', file: 'memory.limit_in_bytes', value: String(limits.memory) });
    if (limits.memorySwap !== undefined) w.push({ controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(limits.memorySwap), optional: true });
    for (const d of devices) {
      const rules: [string, number | undefined][] = [
        ['blkio.throttle.read_bps_device', io.readBps],
        ['blkio.throttle.write_bps_device', io.writeBps],
        ['blkio.throttle.read_iops_device', io.readIops],
        ['blkio.throttle.write_iops_device', io.writeIops],
      ];
      for (const [file, v] of rules) w.push(v === undefined ? { controller: 'blkio', file, value: `${dev(d)} 0`, optional: true } : { controller: 'blkio', file, value: `${dev(d)} ${v}` });
    }
  } else {
    w.push({ controller: 'cpu', file: 'cpu.max.burst', value: '0', optional: true });
    w.push(hard ? { controller: 'cpu', file: 'cpu.max', value: `${hard.quotaUs} ${hard.periodUs}` } : { controller: 'cpu', file: 'cpu.max', value: 'max 100000', optional: true });
    if (hard && hard.burstUs > 0) w.push({ controller: 'cpu', file: 'cpu.max.burst', value: String(hard.burstUs), optional: true });
    w.push({ controller: 'cpu', file: 'cpu.idle', value: '0', optional: true });
    w.push({ controller: 'cpu', file: 'cpu.weight', value: String(share.weight) });
    if (limits.cpuLatency === 'idle') w.push({ controller: 'cpu', file: 'cpu.idle', value: '1' });
    w.push(pids);
    w.push(limits.memory === undefined ? { controller: 'memory', file: 'memory.max', value: 'max', optional: true } : { controller: 'memory', file: 'memory.max', value: String(limits.memory) });
    // v2 counts swap on its own: memory.swap.max = (memory + swap) − memory.
    const swap = limits.memorySwap !== undefined && limits.memory !== undefined ? String(limits.memorySwap - limits.memory) : 'max';
    w.push({ controller: 'memory', file: 'memory.swap.max', value: swap, optional: true });
    const m = (v: number | undefined) => (v === undefined ? 'max' : String(v));
    for (const d of devices) {
      const none = [io.readBps, io.writeBps, io.readIops, io.writeIops].every((v) => v === undefined);
      w.push({ controller: 'io', file: 'io.max', value: `${dev(d)} rbps=${m(io.readBps)} wbps=${m(io.writeBps)} riops=${m(io.readIops)} wiops=${m(io.writeIops)}`, ...(none ? { optional: true } : {}) });
    }
  }
  return w;
}

/** What the hard cap could not follow exactly (for a warning at create/limit). */
export function limitWarnings(limits: ResourceLimits): string[] {
  const out: string[] = [];
  if (limits.cpu?.mode === 'hard') out.push(...toCfs(limits.cpu).clamped);
  out.push(...toShares(effectiveShare(limits)).clamped);
  return out;
}

/**
 * sysctls to set inside the context's own IPC namespace, e.g. { 'kernel.shmmax': '…' }.
 * kernel.shmall counts pages (of `pageSize` bytes), not bytes; a partial page rounds up.
 */
export function ipcSysctls(limits: ResourceLimits, pageSize = 4096): Record<string, string> {
  const ipc = limits.ipc ?? {};
  const out: Record<string, string> = {};
  if (ipc.shmMax !== undefined) out['kernel.shmmax'] = String(ipc.shmMax);
  if (ipc.shmAll !== undefined) out['kernel.shmall'] = String(Math.ceil(ipc.shmAll / pageSize));
  if (ipc.shmIds !== undefined) out['kernel.shmmni'] = String(ipc.shmIds);
  if (ipc.msgMax !== undefined) out['kernel.msgmnb'] = String(ipc.msgMax);
  if (ipc.msgIds !== undefined) out['kernel.msgmni'] = String(ipc.msgIds);
  if (ipc.sem !== undefined) out['kernel.sem'] = ipc.sem.join(' ');
  return out;
}

/** One line per limit, for --help and status. */
export function describeLimits(limits: ResourceLimits): string[] {
  const out: string[] = [];
  const c = limits.cpu;
  if (c) {
    const rate = formatPercent(rateOf(c) * 100);
    const bucket = `fill ${c.fillRate} per ${c.interval} ms, bucket ${c.tokensMax} ms, min ${c.tokensMin} ms`;
    out.push(c.mode === 'hard' ? `cpu: capped at ${rate} of one CPU (${bucket})` : `cpu: share mode, weight ${shareWeightOf(c)} (${rate} of one CPU as a weight, not a cap)`);
  } else out.push('cpu: no cap');
  out.push(`cpu share: ${effectiveShare(limits)}${limits.cpuShare === undefined && c?.mode !== 'share' ? ' (default)' : ''}`);
  out.push(`cpu latency: ${limits.cpuLatency ?? 'normal'}${limits.cpuLatency === undefined ? ' (default)' : ''}`);
  out.push(`processes: ${limits.nproc ?? 'unlimited'}`);
  out.push(
    `memory: ${limits.memory === undefined ? 'unlimited' : formatBytes(limits.memory)}` +
      (limits.memorySwap !== undefined ? `, with swap ${formatBytes(limits.memorySwap)}` : ''),
  );
  const io = limits.io ?? {};
  const ioParts: string[] = [];
  if (io.readBps !== undefined) ioParts.push(`read ${formatByteRate(io.readBps)}`);
  if (io.writeBps !== undefined) ioParts.push(`write ${formatByteRate(io.writeBps)}`);
  if (io.readIops !== undefined) ioParts.push(`read ${formatOpsRate(io.readIops)}`);
  if (io.writeIops !== undefined) ioParts.push(`write ${formatOpsRate(io.writeIops)}`);
  if (io.burst !== undefined) ioParts.push(`burst ${formatBytes(io.burst)}`);
  out.push(`disk i/o: ${ioParts.length > 0 ? ioParts.join(', ') : 'unlimited'}`);
  const s = ipcSysctls(limits);
  if (Object.keys(s).length > 0) out.push(`ipc: ${Object.entries(s).map(([k, v]) => `${k.replace('kernel.', '')}=${v}`).join(', ')}`);
  return out;
}
