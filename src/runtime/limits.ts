// Changing a context's limits: persisted in its config, and on a running
// context applied live (cgroup files, IPC sysctls in its namespace, the I/O
// throttler restarted with the new rates).

import fs from 'node:fs';
import { type CgroupWrite, ipcSysctls, ownControllers, schedOf } from '../cgroups/map.js';
import { type LimitsPatch, type ResourceLimits, limitWarnings, mergeLimits } from '../model/limits.js';
import { limitsVersion } from '../cgroups/cgroups.js';
import { setSched } from '../kernel/helper.js';
import { guardForks } from './forkbackoff.js';
import { blockDevicesFor, ioMechanism, startIoThrottle, throttlerOf, type IoMechanism } from './iothrottle.js';
import type { Runtime } from './runtime.js';

export interface ApplyResult {
  name: string;
  limits: ResourceLimits;
  /** whether the context was running and the change was applied live */
  live: boolean;
  /** the cgroup writes made (live only) */
  writes: CgroupWrite[];
  sysctls: Record<string, string>;
  io: IoMechanism;
  /** pid of the I/O throttler after the change, if one runs */
  throttler?: number;
  warnings: string[];
}

/** The limit writes (without device rules) for a context's limits. */
/**
 * Merges `patch` into the context's limits and persists them; if the context
 * runs, applies them at once. The IPC sysctls only grow or shrink the limits
 * for new objects: existing segments stay (as with sysctl on the host).
 */
export async function applyLimits(rt: Runtime, name: string, patch: LimitsPatch): Promise<ApplyResult> {
  const cg = rt.cgroupOf(name);
  let writes: CgroupWrite[] = [];
  let live = false;
  let throttler: number | undefined;
  // Read, merge, apply and write under the context's lock: concurrent `paene limit` calls never lose a patch.
  const config = await rt.changeConfig(
    name,
    (c, running) => {
      live = running;
      return { ...c, limits: mergeLimits(c.limits, patch) }; // validates before anything changes
    },
    {
      applyLive: async (next, cur) => {
        writes = rt.limitWrites(name, next.limits);
        // A limit that needs a group of its own (memory, block I/O on v1) moves the context into one first.
        for (const c of ownControllers(next.limits, limitsVersion(rt.cgroupHost))) if (!cg.owns(c)) await cg.adopt(c);
        // Apply first: a value the kernel refuses must not end up in the config.
        try {
          cg.apply(writes);
        } catch (e) {
          // Put back what was there; if that fails too, the error above is the one to see.
          try {
            cg.apply(rt.limitWrites(name, cur.limits));
          } catch {
            /* keep the first error */
          }
          throw e;
        }
      },
      after: async (next, running) => {
        if (!running) return;
        const sysctls = ipcSysctls(next.limits);
        // The IPC sysctls that were removed go back to the kernel's defaults only at the next start.
        if (Object.keys(sysctls).length > 0) rt.setSysctls(name, sysctls);
        // A new latency class reaches every process it has now; new ones inherit it from their parent or exec.
        if (patch.cpuLatency !== undefined) setSched(cg.pids(), schedOf(next.limits.cpuLatency));
        if (patch.io !== undefined || !throttlerOf(rt, name)) throttler = await startIoThrottle(rt, name);
        else throttler = throttlerOf(rt, name)?.pid;
        // The CPU writes above replaced any fork back-off hold; guard again with the new limits.
        const live = rt.store.live(name);
        if (live) await guardForks(rt, name, next.limits, live.pid);
      },
    },
  );
  return {
    name,
    limits: config.limits,
    live,
    writes: live ? writes : [],
    sysctls: ipcSysctls(config.limits),
    io: ioMechanism(rt.cgroupHost, config.limits, blockDevicesFor(rt.layout.upperDir(name))),
    throttler,
    warnings: limitWarnings(config.limits),
  };
}

// ---------------------------------------------------------------------------
// Usage counters (for `paene stats` and the isolation suite).

export interface UsageSample {
  /** ms (monotonic) when taken */
  atMs: number;
  /** CPU time used by the context since its cgroup was made, ns */
  cpuNs: number;
  /** time the CPU cap held it back, ns, and how many periods it was throttled in */
  throttledNs: number;
  nrThrottled: number;
  memoryBytes: number;
  memoryLimit?: number;
  oomKills: number;
  processes: number;
  processLimit?: number;
  /** summed over the context's live processes (/proc/PID/io); bytes of exited processes not reaped inside are gone */
  readBytes: number;
  writeBytes: number;
}

function num(s: string | undefined): number | undefined {
  if (s === undefined || s === '' || s === 'max') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

function keyed(text: string | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of (text ?? '').split('\n')) {
    const [k, v] = l.trim().split(/\s+/);
    if (k && v !== undefined) m.set(k, Number(v));
  }
  return m;
}

/** One reading of a running context's counters. */
export function sampleUsage(rt: Runtime, name: string): UsageSample {
  const cg = rt.cgroupOf(name);
  const v2 = rt.cgroupHost.layout === 'v2';
  const atMs = performance.now();
  const cpuStat = keyed(cg.read('cpu', 'cpu.stat'));
  const cpuNs = v2 ? (cpuStat.get('usage_usec') ?? 0) * 1000 : (num(cg.read('cpuacct', 'cpuacct.usage')) ?? 0);
  const throttledNs = v2 ? (cpuStat.get('throttled_usec') ?? 0) * 1000 : (cpuStat.get('throttled_time') ?? 0);
  const memoryBytes = rt.memoryOf(name);
  let memoryLimit = num(cg.read('memory', v2 ? 'memory.max' : 'memory.limit_in_bytes'));
  if (memoryLimit !== undefined && memoryLimit >= 2 ** 62) memoryLimit = undefined;
  const oom = keyed(cg.read('memory', v2 ? 'memory.events' : 'memory.oom_control'));
  const pids = cg.pids();
  let readBytes = 0;
  let writeBytes = 0;
  for (const pid of pids) {
    const io = keyed(readProcIo(pid));
    readBytes += io.get('read_bytes:') ?? io.get('read_bytes') ?? 0;
    writeBytes += io.get('write_bytes:') ?? io.get('write_bytes') ?? 0;
  }
  return {
    atMs,
    cpuNs,
    throttledNs,
    nrThrottled: cpuStat.get('nr_throttled') ?? 0,
    memoryBytes,
    memoryLimit,
    oomKills: oom.get('oom_kill') ?? 0,
    processes: num(cg.read('pids', 'pids.current')) ?? pids.length,
    processLimit: num(cg.read('pids', 'pids.max')),
    readBytes,
    writeBytes,
  };
}

function readProcIo(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return undefined;
  }
}
