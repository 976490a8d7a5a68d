// The limit flags of `paene create` and `paene limit` (--cpu 25%, --io-write
// 10MiB/s, ...) and their parsing into a patch. Pure.

import { PaeneError } from './errors.js';
import { FORK_BACKOFF } from './forkbackoff.js';
import {
  type CpuLimit,
  type IoLimits,
  type IpcLimits,
  type LimitsPatch,
  type SemLimits,
  DEFAULT_LIMITS,
  RANGES,
  checkForkBackoff,
  checkSem,
  parseCpuLatency,
} from './limits.js';
import { type CpuMode, DEFAULT_CPU_SHARE, fromPercent } from './tokenBucket.js';
import { parseByteRate, parseCount, parseDuration, parseOpsRate, parsePercent, parseSize } from './units.js';

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
  {
    flag: 'fork-backoff',
    arg: 'PCT',
    help: `CPU a context that keeps hitting --nproc is held to for a while, e.g. 10%; off, or default (${FORK_BACKOFF.defaultPercent}%)`,
  },
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
    if (cpuFields.length > 0)
      throw new PaeneError(
        'invalid-argument',
        `--cpu ${f.cpu} removes the CPU cap; it cannot be combined with --${cpuFields.join(', --')}`,
      );
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
    if (io[k] === 0)
      throw new PaeneError(
        'invalid-argument',
        `--io-${k.startsWith('read') ? 'read' : 'write'}${k.endsWith('Iops') ? '-ops' : ''}: a rate of 0 would stop all I/O; use 'unlimited' to remove the limit`,
      );
  }
  if (Object.keys(io).length > 0) p.io = io;

  // Not a limit that "unlimited" removes: off turns it off, default brings the default back.
  if (f['fork-backoff'] !== undefined) p.forkBackoff = parseForkBackoff(f['fork-backoff']);
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
  ipcSet(
    'shmIds',
    get('shm-ids', (s, w) => parseCount(s, w, ...RANGES.shmIds)),
  );
  ipcSet(
    'msgMax',
    get('msg-max', (s, w) => checkRange(parseSize(s, w), w, ...RANGES.msgMax)),
  );
  ipcSet(
    'msgIds',
    get('msg-ids', (s, w) => parseCount(s, w, ...RANGES.msgIds)),
  );
  ipcSet('sem', get('sem', parseSem));
  if (Object.keys(ipc).length > 0) p.ipc = ipc;
  return p;
}

function parseForkBackoff(s: string): number | null {
  const v = s.trim().toLowerCase();
  if (v === 'off' || v === '0' || v === '0%') return 0;
  if (v === 'default') return null;
  return checkForkBackoff(parsePercent(s, '--fork-backoff'), '--fork-backoff');
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
    throw new PaeneError(
      'invalid-argument',
      `invalid ${what} '${s}': expected four whole numbers "SEMMSL SEMMNS SEMOPM SEMMNI", e.g. "250 32000 32 128"`,
    );
  }
  return checkSem(parts.map(Number) as SemLimits, what);
}
