// The fork back-off's policy (docs/isolation.md, "Spinning fork bombs"). Pure.
//
// A bomb whose processes retry every refused fork at once is a CPU hog the
// process limit cannot stop: 1024 processes spinning in a failing fork() slow
// every fork on the host (the kernel allocates the new pid in every pid
// namespace under one lock before the pids controller refuses it). So a
// context that keeps running into its process limit is held to a small CPU
// quota for a while, then released; a bomb still running is held again at
// once. The monitor reads pids.events and makes the writes
// (src/native/forkbackoff.h); every number is decided here.

import type { CgroupVersion } from './cgroup.js';
import { type TokenBucketParams, rateOf } from './tokenBucket.js';
import { FORK_BACKOFF_GUARD } from '../proto/fork-backoff.js';
import { flagArgs, type Entry } from '../proto/tokens.js';

export const FORK_BACKOFF = {
  /** the CPU a held context keeps, % of one CPU (limits.forkBackoff overrides; 0 = off) */
  defaultPercent: 5,
  /** refused forks within `windowMs` that start a hold: a bomb refuses thousands a second, a busy build a few */
  trigger: 100,
  windowMs: 1000,
  /** how long a hold lasts before the old CPU settings come back */
  holdMs: 2000,
  /** how often the monitor reads a quiet context's pids.events, and one that refused forks lately or was just released */
  pollMs: 1000,
  hotMs: 50,
  /**
   * On a busy host the pass over the quiet contexts comes less often than
   * pollMs when it would otherwise take more than this share of a CPU: at
   * 10,000 contexts a pass reads for ~70 ms, so every ~3.5 s instead of 7%
   * of a CPU spent reading files while the host is contended.
   */
  passShare: 0.02,
  /**
   * The quiet contexts are read (one pass every pollMs) only when some task
   * waited for a CPU at least this share of the last interval (Linux PSI,
   * `pressure`): a bomb's own spinning processes wait for each other, so it
   * opens the gate; idle contexts on an idle host cost no reads.
   */
  pressure: '/proc/pressure/cpu',
  pressureGate: 0.05,
  /** the CFS period of the hold's quota */
  periodUs: 100_000,
} as const;

/** The least quota the kernel takes is 1 ms: 1% of a 100 ms period. */
export const FORK_BACKOFF_RANGE = [1, 100] as const;

/**
 * The hold's CPU in % of one CPU, or undefined when there is none: turned
 * off, or a hard cap already at or below it (the hold would loosen it).
 */
export function forkBackoffPercent(limits: BackoffLimits): number | undefined {
  const pct = limits.forkBackoff ?? FORK_BACKOFF.defaultPercent;
  if (pct <= 0) return undefined;
  if (limits.cpu?.mode === 'hard' && rateOf(limits.cpu) * 100 <= pct) return undefined;
  return pct;
}

/** What a hold writes into the context's CPU group, in order (burst ≤ quota at every step; the monitor restores in reverse). */
export function forkBackoffWrites(pct: number, version: CgroupVersion): { file: string; value: string }[] {
  const quota = String(Math.max(1000, Math.round((pct / 100) * FORK_BACKOFF.periodUs)));
  if (version === 'v1') {
    return [
      { file: 'cpu.cfs_burst_us', value: '0' },
      { file: 'cpu.cfs_period_us', value: String(FORK_BACKOFF.periodUs) },
      { file: 'cpu.cfs_quota_us', value: quota },
    ];
  }
  return [
    { file: 'cpu.max.burst', value: '0' },
    { file: 'cpu.max', value: `${quota} ${FORK_BACKOFF.periodUs}` },
  ];
}

/** What the policy reads of a context's limits (model/limits.ts ResourceLimits has both). */
export interface BackoffLimits {
  forkBackoff?: number;
  cpu?: TokenBucketParams & { mode: string };
}

export interface GuardTarget {
  /** the context's init (the guard ends when the monitor reaps it) */
  pid: number;
  /** its pids.events and its CPU group directory */
  eventsFile: string;
  cpuDir: string;
}

/** The monitor request that guards a running context (or turns its guard off). */
export function forkBackoffRequest(t: GuardTarget, limits: BackoffLimits, version: CgroupVersion): string[] {
  const pct = forkBackoffPercent(limits);
  if (pct === undefined) return guardOff(t.pid);
  const e: Entry[] = [
    ['--pid', String(t.pid)],
    ['--events', t.eventsFile],
    ['--trigger', String(FORK_BACKOFF.trigger)],
    ['--window-ms', String(FORK_BACKOFF.windowMs)],
    ['--hold-ms', String(FORK_BACKOFF.holdMs)],
    ['--poll-ms', String(FORK_BACKOFF.pollMs)],
    ['--pass-share', String(FORK_BACKOFF.passShare)],
    ['--hot-ms', String(FORK_BACKOFF.hotMs)],
    ['--pressure', FORK_BACKOFF.pressure],
    ['--gate', String(FORK_BACKOFF.pressureGate)],
    ...forkBackoffWrites(pct, version).map((w): Entry => ['--write', `${t.cpuDir}/${w.file}`, w.value]),
  ];
  return ['guard', ...flagArgs(FORK_BACKOFF_GUARD, e)];
}

/** The request that ends a context's guard. */
export function guardOff(pid: number): string[] {
  return ['guard', ...flagArgs(FORK_BACKOFF_GUARD, [['--pid', String(pid)], ['--off']])];
}

/** The request for a guard's state ("ok held=0|1 holds=N refusals=N"). */
export function guardStatusRequest(pid: number): string[] {
  return ['guard-status', ...flagArgs(FORK_BACKOFF_GUARD, [['--pid', String(pid)]])];
}

/** One line for `paene limit NAME`. */
export function describeForkBackoff(limits: BackoffLimits): string {
  const pct = limits.forkBackoff ?? FORK_BACKOFF.defaultPercent;
  const dflt = limits.forkBackoff === undefined ? ' (default)' : '';
  if (pct <= 0) return 'fork back-off: off';
  const held = forkBackoffPercent(limits) === undefined ? ' (not needed: the CPU cap is as tight)' : '';
  return `fork back-off: ${FORK_BACKOFF.trigger} refused forks in ${FORK_BACKOFF.windowMs / 1000} s hold it to ${pct}% of one CPU for ${FORK_BACKOFF.holdMs / 1000} s${held}${dflt}`;
}
