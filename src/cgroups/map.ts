// What a context's limits become in the kernel: the cgroup files (v1 and
// v2, in an order the kernel accepts), the IPC sysctls of its namespace,
// and the scheduling class of its processes. Pure: the kernel adapter
// writes what this returns.

import type { CpuLatency, ResourceLimits } from '../model/limits.js';
import { effectiveShare } from '../model/limits.js';
import type { BlockDevice, CgroupVersion, CgroupWrite } from '../model/cgroup.js';

export type { BlockDevice, CgroupVersion, CgroupWrite } from '../model/cgroup.js';
export { effectiveShare, ipcSysctls } from '../model/limits.js';
import { toCfs, toShares } from '../model/tokenBucket.js';

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

/** What a new CPU group already holds: writing it again costs, not a no-op (see freshWrites). */
const NEW_GROUP_CPU: Readonly<Record<string, string>> = {
  'cpu.cfs_burst_us': '0',
  'cpu.cfs_quota_us': '-1',
  'cpu.max.burst': '0',
  'cpu.max': 'max 100000',
  'cpu.idle': '0',
};

/**
 * The writes for a group made just now: without those that set the CPU
 * bandwidth to what a new group has. Each write of a bandwidth file makes the
 * kernel walk every CPU group on the host (tg_set_cfs_bandwidth checks the
 * whole tree's quotas): at 10,000 contexts that walk was the largest part of
 * a start's kernel time. Live changes keep them (they remove old limits).
 */
export function freshWrites(writes: CgroupWrite[]): CgroupWrite[] {
  return writes.filter((w) => !(w.controller === 'cpu' && NEW_GROUP_CPU[w.file] === w.value));
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
  const pids: CgroupWrite =
    limits.nproc === undefined
      ? { controller: 'pids', file: 'pids.max', value: 'max', optional: true }
      : { controller: 'pids', file: 'pids.max', value: String(limits.nproc) };
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
    w.push(
      limits.memory === undefined
        ? { controller: 'memory', file: 'memory.limit_in_bytes', value: '-1', optional: true }
        : { controller: 'memory', file: 'memory.limit_in_bytes', value: String(limits.memory) },
    );
    if (limits.memorySwap !== undefined)
      w.push({ controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(limits.memorySwap), optional: true });
    for (const d of devices) {
      const rules: [string, number | undefined][] = [
        ['blkio.throttle.read_bps_device', io.readBps],
        ['blkio.throttle.write_bps_device', io.writeBps],
        ['blkio.throttle.read_iops_device', io.readIops],
        ['blkio.throttle.write_iops_device', io.writeIops],
      ];
      for (const [file, v] of rules)
        w.push(
          v === undefined
            ? { controller: 'blkio', file, value: `${dev(d)} 0`, optional: true }
            : { controller: 'blkio', file, value: `${dev(d)} ${v}` },
        );
    }
  } else {
    w.push({ controller: 'cpu', file: 'cpu.max.burst', value: '0', optional: true });
    w.push(
      hard
        ? { controller: 'cpu', file: 'cpu.max', value: `${hard.quotaUs} ${hard.periodUs}` }
        : { controller: 'cpu', file: 'cpu.max', value: 'max 100000', optional: true },
    );
    if (hard && hard.burstUs > 0) w.push({ controller: 'cpu', file: 'cpu.max.burst', value: String(hard.burstUs), optional: true });
    w.push({ controller: 'cpu', file: 'cpu.idle', value: '0', optional: true });
    w.push({ controller: 'cpu', file: 'cpu.weight', value: String(share.weight) });
    if (limits.cpuLatency === 'idle') w.push({ controller: 'cpu', file: 'cpu.idle', value: '1' });
    w.push(pids);
    w.push(
      limits.memory === undefined
        ? { controller: 'memory', file: 'memory.max', value: 'max', optional: true }
        : { controller: 'memory', file: 'memory.max', value: String(limits.memory) },
    );
    // v2 counts swap on its own: memory.swap.max = (memory + swap) − memory.
    const swap = limits.memorySwap !== undefined && limits.memory !== undefined ? String(limits.memorySwap - limits.memory) : 'max';
    w.push({ controller: 'memory', file: 'memory.swap.max', value: swap, optional: true });
    const m = (v: number | undefined) => (v === undefined ? 'max' : String(v));
    for (const d of devices) {
      const none = [io.readBps, io.writeBps, io.readIops, io.writeIops].every((v) => v === undefined);
      w.push({
        controller: 'io',
        file: 'io.max',
        value: `${dev(d)} rbps=${m(io.readBps)} wbps=${m(io.writeBps)} riops=${m(io.readIops)} wiops=${m(io.writeIops)}`,
        ...(none ? { optional: true } : {}),
      });
    }
  }
  return w;
}

/**
 * The v1 group that contexts share for the controllers they need no group
 * of their own for. A memory cgroup per context costs the kernel state for
 * every shrinker on the host (one per superblock): with n contexts that is
 * an n² term, so only a context with a memory limit gets one. The devices
 * rules are the same for every context, and block I/O needs a group only
 * to throttle. (`_` cannot begin a context name.)
 */
export const SHARED_GROUP = '_shared';
/**
 * On cgroup v2 a context's controllers live in one directory, so sharing
 * means place: contexts without a memory cgroup of their own live under
 * <parent>/_pool, below which memory is not enabled.
 */
export const POOL_GROUP = '_pool';
export const SHAREABLE_V1 = ['memory', 'blkio', 'devices'] as const;
export type ShareableV1 = (typeof SHAREABLE_V1)[number];

/**
 * The shareable controllers a context needs a group of its own for, from its
 * limits. On v2 an I/O limit needs a memory cgroup too: the kernel charges
 * buffered writeback to the writer's memory cgroup, and io.max sees it there.
 */
export function ownControllers(limits: ResourceLimits, version: CgroupVersion): ShareableV1[] {
  const own: ShareableV1[] = [];
  const io = limits.io ?? {};
  const hasIo = [io.readBps, io.writeBps, io.readIops, io.writeIops].some((v) => v !== undefined);
  if (limits.memory !== undefined || limits.memorySwap !== undefined || (version === 'v2' && hasIo)) own.push('memory');
  if (hasIo) own.push('blkio');
  return own;
}
