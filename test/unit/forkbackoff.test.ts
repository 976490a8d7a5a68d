// The fork back-off's policy (core/forkbackoff): which contexts are guarded,
// what a hold writes on v1 and v2, the monitor request, the --fork-backoff flag.

import { describe, expect, it } from 'vitest';
import { FORK_BACKOFF, forkBackoffPercent, forkBackoffRequest, forkBackoffWrites } from '../../src/model/forkbackoff.js';
import { parseLimitFlags } from '../../src/model/limitflags.js';
import { DEFAULT_LIMITS, describeLimits, mergeLimits, validateLimits } from '../../src/model/limits.js';

const target = { pid: 42, eventsFile: '/cg/pids/p/c/pids.events', cpuDir: '/cg/cpu/p/c' };

describe('fork back-off', () => {
  it('is on by default, off at 0, and not needed under a CPU cap as tight as the hold', () => {
    expect(forkBackoffPercent(DEFAULT_LIMITS)).toBe(FORK_BACKOFF.defaultPercent);
    expect(forkBackoffPercent({ ...DEFAULT_LIMITS, forkBackoff: 0 })).toBeUndefined();
    expect(forkBackoffPercent({ ...DEFAULT_LIMITS, forkBackoff: 10 })).toBe(10);
    const capped = (pct: string, backoff?: string) =>
      mergeLimits(DEFAULT_LIMITS, parseLimitFlags({ cpu: pct, ...(backoff ? { 'fork-backoff': backoff } : {}) }));
    expect(forkBackoffPercent(capped('5%'))).toBeUndefined();
    expect(forkBackoffPercent(capped('3%'))).toBeUndefined();
    expect(forkBackoffPercent(capped('25%'))).toBe(5);
    expect(forkBackoffPercent(capped('25%', '30%'))).toBeUndefined();
  });

  it('a hold drops the burst before the quota (burst <= quota at every step) and never goes under 1 ms per period', () => {
    expect(forkBackoffWrites(5, 'v1')).toEqual([
      { file: 'cpu.cfs_burst_us', value: '0' },
      { file: 'cpu.cfs_period_us', value: '100000' },
      { file: 'cpu.cfs_quota_us', value: '5000' },
    ]);
    expect(forkBackoffWrites(5, 'v2')).toEqual([
      { file: 'cpu.max.burst', value: '0' },
      { file: 'cpu.max', value: '5000 100000' },
    ]);
    expect(forkBackoffWrites(1, 'v2')[1]?.value).toBe('1000 100000');
  });

  it('hands the monitor every number: trigger, window, hold, looks, the pressure gate, and the writes with whole paths', () => {
    expect(forkBackoffRequest(target, DEFAULT_LIMITS, 'v2')).toEqual([
      'guard',
      '--pid',
      '42',
      '--events',
      '/cg/pids/p/c/pids.events',
      '--trigger',
      String(FORK_BACKOFF.trigger),
      '--window-ms',
      String(FORK_BACKOFF.windowMs),
      '--hold-ms',
      String(FORK_BACKOFF.holdMs),
      '--poll-ms',
      String(FORK_BACKOFF.pollMs),
      '--pass-share',
      String(FORK_BACKOFF.passShare),
      '--hot-ms',
      String(FORK_BACKOFF.hotMs),
      '--pressure',
      '/proc/pressure/cpu',
      '--gate',
      String(FORK_BACKOFF.pressureGate),
      '--write',
      '/cg/cpu/p/c/cpu.max.burst',
      '0',
      '--write',
      '/cg/cpu/p/c/cpu.max',
      '5000 100000',
    ]);
    expect(forkBackoffRequest(target, { ...DEFAULT_LIMITS, forkBackoff: 0 }, 'v1')).toEqual(['guard', '--pid', '42', '--off']);
  });

  it('--fork-backoff takes a percent, off, or default; config read back is checked', () => {
    expect(parseLimitFlags({ 'fork-backoff': '10%' }).forkBackoff).toBe(10);
    expect(parseLimitFlags({ 'fork-backoff': 'off' }).forkBackoff).toBe(0);
    expect(parseLimitFlags({ forkBackoff: 'default' }).forkBackoff).toBeNull();
    expect(mergeLimits({ ...DEFAULT_LIMITS, forkBackoff: 0 }, { forkBackoff: null }).forkBackoff).toBeUndefined();
    expect(() => parseLimitFlags({ 'fork-backoff': '0.5%' })).toThrow(
      /--fork-backoff: must be 0 \(off\) or a percent of one CPU from 1 to 100/,
    );
    expect(() => parseLimitFlags({ 'fork-backoff': 'lots' })).toThrow(/--fork-backoff/);
    expect(() => validateLimits({ forkBackoff: 500 })).toThrow(/limits.forkBackoff/);
    expect(describeLimits({ ...DEFAULT_LIMITS, forkBackoff: 0 })).toContain('fork back-off: off');
    expect(describeLimits(mergeLimits(DEFAULT_LIMITS, parseLimitFlags({ cpu: '2%' })))).toContain(
      'fork back-off: 100 refused forks in 1 s hold it to 5% of one CPU for 2 s (not needed: the CPU cap is as tight) (default)',
    );
  });
});
