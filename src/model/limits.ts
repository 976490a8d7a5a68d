// Per-context resource limits: the config shape, the kernel's ranges,
// merging, validation (of patches and of config read back from disk),
// warnings and descriptions. Pure. The CLI flags are model/limitflags.ts;
// what the kernel gets (cgroup files, IPC sysctls, scheduling) is
// cgroups/map.ts.

import { PaeneError } from './errors.js';
import { FORK_BACKOFF_RANGE, describeForkBackoff } from './forkbackoff.js';
import { DEFAULT_CPU_SHARE, type TokenBucketParams, rateOf, shareWeightOf, toCfs, toShares, validateBucket } from './tokenBucket.js';
import { formatByteRate, formatBytes, formatOpsRate, formatPercent } from './units.js';

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
  /**
   * the CPU (% of one CPU) a context that keeps running into its process
   * limit is held to for a while (core/forkbackoff); 0 = off, absent = the default
   */
  forkBackoff?: number;
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
 * I/O and IPC are left to the kernel's defaults unless asked for. A spinning
 * fork bomb is held back by the fork back-off (on unless limits.forkBackoff is 0).
 */
export const DEFAULT_LIMITS: ResourceLimits = { nproc: 1024, cpuShare: DEFAULT_CPU_SHARE };

/** A change to limits: a field set to null removes that limit ("unlimited"). */
export type LimitsPatch = {
  nproc?: number | null;
  memory?: number | null;
  memorySwap?: number | null;
  /** a partial bucket is merged into the current one */
  cpu?: Partial<CpuLimit> | null;
  cpuShare?: number | null;
  cpuLatency?: CpuLatency | null;
  /** null: back to the default */
  forkBackoff?: number | null;
  io?: { [K in keyof IoLimits]?: IoLimits[K] | null } | null;
  ipc?: { [K in keyof IpcLimits]?: IpcLimits[K] | null } | null;
};

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

/** The kernel's bounds of kernel.sem's four numbers. */
export function checkSem(v: SemLimits, what: string): SemLimits {
  const [msl, mns, opm, mni] = v;
  // ipc/sem.c: SEMMSL and SEMOPM up to 65536 (SEMMSL_FAST...), SEMMNI up to IPCMNI (32768).
  if (msl < 1 || msl > 65_536) throw new PaeneError('invalid-argument', `${what}: SEMMSL ${msl} must be from 1 to 65536`);
  if (mns < 1 || mns > INT_MAX) throw new PaeneError('invalid-argument', `${what}: SEMMNS ${mns} must be from 1 to ${INT_MAX}`);
  if (opm < 1 || opm > 65_536) throw new PaeneError('invalid-argument', `${what}: SEMOPM ${opm} must be from 1 to 65536`);
  if (mni < RANGES.semMni[0] || mni > RANGES.semMni[1])
    throw new PaeneError('invalid-argument', `${what}: SEMMNI ${mni} must be from ${RANGES.semMni[0]} to ${RANGES.semMni[1]}`);
  return v;
}

/** 0 (off) or a percent of one CPU the kernel can give as a quota. */
export function checkForkBackoff(v: unknown, what: string): number {
  const [min, max] = FORK_BACKOFF_RANGE;
  if (typeof v !== 'number' || !Number.isFinite(v) || (v !== 0 && (v < min || v > max))) {
    throw new PaeneError(
      'invalid-argument',
      `${what}: must be 0 (off) or a percent of one CPU from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

// ---------------------------------------------------------------------------
// Merging and validation.

/** Applies a patch; null removes a limit. The result is validated. */
export function mergeLimits(base: ResourceLimits, patch: LimitsPatch): ResourceLimits {
  const out: ResourceLimits = structuredClone(base);
  const scalar = <K extends 'nproc' | 'memory' | 'memorySwap' | 'cpuShare' | 'forkBackoff'>(k: K) => {
    const v = patch[k];
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = v;
  };
  scalar('nproc');
  scalar('memory');
  scalar('memorySwap');
  scalar('cpuShare');
  scalar('forkBackoff');
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

const TOP_KEYS = ['nproc', 'memory', 'memorySwap', 'cpu', 'cpuShare', 'cpuLatency', 'forkBackoff', 'io', 'ipc'];
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
    if (out.memory === undefined)
      throw new PaeneError('invalid-argument', `limits.memorySwap needs limits.memory (it is memory + swap together)`);
    if (out.memorySwap < out.memory) {
      throw new PaeneError(
        'invalid-argument',
        `limits.memorySwap (${formatBytes(out.memorySwap)}) must be at least limits.memory (${formatBytes(out.memory)}): it counts memory + swap together`,
      );
    }
  }
  if (o.cpu !== undefined) out.cpu = validateBucket(o.cpu, 'limits.cpu');
  if (o.cpuShare !== undefined) out.cpuShare = wholeIn(o.cpuShare, 'limits.cpuShare', ...RANGES.cpuShare);
  if (o.cpuLatency !== undefined) out.cpuLatency = parseCpuLatency(String(o.cpuLatency), 'limits.cpuLatency');
  if (o.forkBackoff !== undefined) out.forkBackoff = checkForkBackoff(o.forkBackoff, 'limits.forkBackoff');
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
      if (!Array.isArray(ipc.sem) || ipc.sem.length !== 4)
        throw new PaeneError('invalid-argument', `limits.ipc.sem: must be [SEMMSL, SEMMNS, SEMOPM, SEMMNI]`);
      r.sem = checkSem(ipc.sem.map((v, i) => wholeIn(v, `limits.ipc.sem[${i}]`, ...RANGES.semInt)) as SemLimits, 'limits.ipc.sem');
    }
    out.ipc = r;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Warnings and descriptions.

/** What the hard cap could not follow exactly (for a warning at create/limit). */
export function limitWarnings(limits: ResourceLimits): string[] {
  const out: string[] = [];
  if (limits.cpu?.mode === 'hard') out.push(...toCfs(limits.cpu).clamped);
  out.push(...toShares(effectiveShare(limits)).clamped);
  return out;
}

/** One line per limit, for --help and status. */
export function describeLimits(limits: ResourceLimits): string[] {
  const out: string[] = [];
  const c = limits.cpu;
  if (c) {
    const rate = formatPercent(rateOf(c) * 100);
    const bucket = `fill ${c.fillRate} per ${c.interval} ms, bucket ${c.tokensMax} ms, min ${c.tokensMin} ms`;
    out.push(
      c.mode === 'hard'
        ? `cpu: capped at ${rate} of one CPU (${bucket})`
        : `cpu: share mode, weight ${shareWeightOf(c)} (${rate} of one CPU as a weight, not a cap)`,
    );
  } else out.push('cpu: no cap');
  out.push(`cpu share: ${effectiveShare(limits)}${limits.cpuShare === undefined && c?.mode !== 'share' ? ' (default)' : ''}`);
  out.push(`cpu latency: ${limits.cpuLatency ?? 'normal'}${limits.cpuLatency === undefined ? ' (default)' : ''}`);
  out.push(`processes: ${limits.nproc ?? 'unlimited'}`);
  out.push(describeForkBackoff(limits));
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
  if (Object.keys(s).length > 0)
    out.push(
      `ipc: ${Object.entries(s)
        .map(([k, v]) => `${k.replace('kernel.', '')}=${v}`)
        .join(', ')}`,
    );
  return out;
}

/** The share weight in effect: explicit cpuShare, else a share-mode bucket's rate, else the default. */
export function effectiveShare(limits: ResourceLimits): number {
  if (limits.cpuShare !== undefined) return limits.cpuShare;
  if (limits.cpu?.mode === 'share') return shareWeightOf(limits.cpu);
  return DEFAULT_CPU_SHARE;
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
