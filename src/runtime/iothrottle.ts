// Disk I/O limits on the real kernel: which block devices a context's limits
// name, which mechanism enforces them on this host, and paene's own
// per-context write throttler (src/native/paene-iothrottle.c) where the
// kernel cannot throttle buffered writes.
//
//   host                         direct I/O, reads         buffered writes
//   v2 with io + memory          io.max (kernel)           io.max (writeback is charged to the cgroup)
//   v1 / hybrid (blkio on v1)    blkio.throttle.* (kernel) paene-iothrottle: meters write_bytes, freezes while in debt
//   no block device found        paene-iothrottle (reads and writes)
//
// The throttler is a small static C program, not a Node daemon: it runs once
// per limited context for the context's whole life, and a Node process costs
// ~40 MB of RSS against ~1 MB for the C one. It is a child of the monitor
// (which reaps it), is stopped by pid at `stop`, and exits by itself when the
// context's init is gone.

import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../model/errors.js';
import type { BlockDevice } from '../cgroups/map.js';
import type { ResourceLimits } from '../model/limits.js';
import type { ContextConfig } from '../context/config.js';
import type { CgroupHost } from '../cgroups/cgroups.js';
import { nativePath } from '../kernel/helper.js';
import { isAlive, readStat } from '../kernel/procfs.js';
import { IO_THROTTLE_REQUEST, IO_THROTTLE_STATUS } from '../proto/io-throttle.js';
import { decodeMessage, flagArgs, type Entry } from '../proto/tokens.js';
import type { RuntimeParts } from './parts.js';

/** Linux dev_t → major:minor (glibc's gnu_dev_major/minor encoding). */
export function splitDev(dev: bigint): BlockDevice {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * The block devices behind the filesystem holding `dir`: its st_dev, mapped
 * from a partition to its whole disk (throttling rules name disks). None for
 * filesystems without one (tmpfs, overlay on anonymous devices) or devices
 * without a request queue.
 */
export function blockDevicesFor(dir: string, sysfs = '/sys'): BlockDevice[] {
  let dev: BlockDevice;
  try {
    dev = splitDev(fs.statSync(dir, { bigint: true }).dev);
  } catch {
    return [];
  }
  let sys = path.join(sysfs, 'dev/block', `${dev.major}:${dev.minor}`);
  if (!fs.existsSync(sys)) return [];
  try {
    sys = fs.realpathSync(sys);
    if (fs.existsSync(path.join(sys, 'partition'))) sys = path.dirname(sys);
    if (!fs.existsSync(path.join(sys, 'queue'))) return [];
    const [maj, min] = fs.readFileSync(path.join(sys, 'dev'), 'utf8').trim().split(':').map(Number);
    if (!Number.isInteger(maj) || !Number.isInteger(min)) return [];
    // zram and similar memory-backed disks have a queue but no point in throttling
    if (/^(zram|ram|loop)\d+$/.test(path.basename(sys)) && !fs.existsSync(path.join(sys, 'loop/backing_file'))) return [];
    return [{ major: maj as number, minor: min as number }];
  } catch {
    return [];
  }
}

export type IoMechanism = 'kernel io.max' | 'kernel blkio' | 'kernel blkio + paene-iothrottle' | 'paene-iothrottle' | 'none';

/** Whether the kernel throttles buffered writes here: cgroup v2 with both io and memory controllers. */
export function kernelThrottlesWriteback(host: CgroupHost): boolean {
  const c = host.unified?.controllers ?? [];
  return host.layout === 'v2' && c.includes('io') && c.includes('memory');
}

/** What enforces the context's I/O limits on this host. */
export function ioMechanism(host: CgroupHost, limits: ResourceLimits, devices: BlockDevice[]): IoMechanism {
  const io = limits.io ?? {};
  if (io.writeBps === undefined && io.readBps === undefined && io.writeIops === undefined && io.readIops === undefined) return 'none';
  if (devices.length === 0) return 'paene-iothrottle';
  if (kernelThrottlesWriteback(host)) return 'kernel io.max';
  return io.writeBps !== undefined ? 'kernel blkio + paene-iothrottle' : 'kernel blkio';
}

/** The rates the throttler meters (undefined: no throttler needed). */
export function throttlerRates(
  host: CgroupHost,
  limits: ResourceLimits,
  devices: BlockDevice[],
): { writeBps?: number; readBps?: number; burst: number } | undefined {
  const io = limits.io ?? {};
  if (kernelThrottlesWriteback(host) && devices.length > 0) return undefined;
  // With a device the kernel throttles reads (v1 blkio: reads are synchronous in the reader's cgroup).
  const writeBps = io.writeBps;
  const readBps = devices.length === 0 ? io.readBps : undefined;
  if (writeBps === undefined && readBps === undefined) return undefined;
  return { writeBps, readBps, burst: io.burst ?? defaultBurst(Math.max(writeBps ?? 0, readBps ?? 0)) };
}

/** A quarter second of the rate, at least 256 KiB: small enough that a 10 s average is within a few percent. */
export function defaultBurst(rate: number): number {
  return Math.max(256 * 1024, Math.round(rate / 4));
}

interface ThrottlerRecord {
  pid: number;
  starttime: number;
}

function recordFile(rt: RuntimeParts, name: string): string {
  return path.join(rt.layout.contextDir(name), 'iothrottle.json');
}
export function statusFile(rt: RuntimeParts, name: string): string {
  return path.join(rt.layout.contextDir(name), 'iothrottle.status');
}

/** The running throttler of a context, if any. */
export function throttlerOf(rt: RuntimeParts, name: string): ThrottlerRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(recordFile(rt, name), 'utf8')) as ThrottlerRecord;
    return isAlive(r.pid, r.starttime) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** The freezer file of a context and the values that freeze and thaw it. */
function freezerOf(rt: RuntimeParts, name: string): { file: string; frozen: string; thawed: string } | undefined {
  const cg = rt.cgroupOf(name);
  if (cg.unifiedDir && fs.existsSync(path.join(cg.unifiedDir, 'cgroup.freeze')))
    return { file: path.join(cg.unifiedDir, 'cgroup.freeze'), frozen: '1', thawed: '0' };
  const f = rt.cgroupHost.v1.has('freezer') ? cg.dir('freezer') : undefined;
  return f ? { file: path.join(f, 'freezer.state'), frozen: 'FROZEN', thawed: 'THAWED' } : undefined;
}

/**
 * Starts the context's throttler if its limits need one (runtime hook, after
 * the init is up). Idempotent: a running one is stopped first.
 */
export async function startIoThrottle(rt: RuntimeParts, name: string, known?: ContextConfig): Promise<number | undefined> {
  const config = known ?? rt.config(name);
  // No I/O rate asked for: nothing to run, and none can be running (every start and stop ends the last one).
  if (config.limits.io?.writeBps === undefined && config.limits.io?.readBps === undefined && !throttlerOf(rt, name)) return undefined;
  await stopIoThrottle(rt, name);
  const live = rt.store.live(name);
  if (!live) return undefined;
  const rates = throttlerRates(rt.cgroupHost, config.limits, blockDevicesFor(rt.layout.upperDir(name)));
  if (!rates) return undefined;
  const fz = freezerOf(rt, name);
  if (!fz)
    throw new PaeneError(
      'unsupported',
      `context '${name}' has I/O limits but this host offers no freezer (cgroup.freeze or the v1 freezer) to enforce them`,
    );
  const cg = rt.cgroupOf(name);
  const procs = path.join(cg.unifiedDir ?? cg.dirs()[0] ?? '', 'cgroup.procs');
  const e: Entry[] = [
    ['--procs', procs],
    ['--freeze', fz.file],
    ['--frozen', fz.frozen],
    ['--thawed', fz.thawed],
  ];
  e.push(
    ['--init', String(live.pid)],
    ['--init-start', String(live.starttime)],
    ['--burst', String(rates.burst)],
    ['--status', statusFile(rt, name)],
  );
  if (rates.writeBps) e.push(['--write-bps', String(rates.writeBps)]);
  if (rates.readBps) e.push(['--read-bps', String(rates.readBps)]);
  const args = flagArgs(IO_THROTTLE_REQUEST, e);
  const pid = await rt.monitor.spawn(nativePath('paene-iothrottle'), args);
  const st = readStat(pid);
  if (!st) throw new PaeneError('internal', `the I/O throttler of '${name}' exited at once`);
  fs.writeFileSync(recordFile(rt, name), JSON.stringify({ pid, starttime: st.starttime }) + '\n');
  return pid;
}

/** Stops the context's throttler by pid (runtime hook, before the context is stopped); it thaws the context as it exits. */
export async function stopIoThrottle(rt: RuntimeParts, name: string): Promise<void> {
  const rec = throttlerOf(rt, name);
  if (rec) {
    try {
      process.kill(rec.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 100 && isAlive(rec.pid, rec.starttime); i++) await sleep(10);
    if (isAlive(rec.pid, rec.starttime)) {
      try {
        process.kill(rec.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // A killed throttler cannot thaw: do it here.
    const fz = freezerOf(rt, name);
    if (fz) {
      try {
        fs.writeFileSync(fz.file, fz.thawed);
      } catch {
        /* the cgroup is gone */
      }
    }
  }
  for (const f of [recordFile(rt, name), statusFile(rt, name)]) {
    try {
      fs.rmSync(f, { force: true });
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw e;
    }
  }
}

export interface ThrottlerStatus {
  pid: number;
  writeBps: number;
  readBps: number;
  burst: number;
  writeTokens: number;
  readTokens: number;
  written: number;
  read: number;
  holds: number;
  heldMs: number;
  frozen: boolean;
}

/** The throttler's last published state (every 250 ms), if it runs. */
export function ioThrottleStatus(rt: RuntimeParts, name: string): ThrottlerStatus | undefined {
  const rec = throttlerOf(rt, name);
  if (!rec) return undefined;
  const kv = new Map<string, number>();
  try {
    for (const [k, v] of decodeMessage(IO_THROTTLE_STATUS, fs.readFileSync(statusFile(rt, name)))) kv.set(k, Number(v));
  } catch {
    return undefined; // not published yet, or by a throttler an older paene started
  }
  const g = (k: string) => kv.get(k) ?? 0;
  return {
    pid: rec.pid,
    writeBps: g('write_bps'),
    readBps: g('read_bps'),
    burst: g('burst'),
    writeTokens: g('write_tokens'),
    readTokens: g('read_tokens'),
    written: g('written'),
    read: g('read'),
    holds: g('holds'),
    heldMs: g('held_ms'),
    frozen: g('frozen') === 1,
  };
}
