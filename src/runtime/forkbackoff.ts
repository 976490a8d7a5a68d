// The fork back-off on a running context (policy: core/forkbackoff; the
// watching and holding: the monitor, src/native/forkbackoff.h). Guarded at
// start and again after every live limit change (a limit write replaces a
// hold, and the percent may have changed); the guard ends when the monitor
// reaps the context's init.

import path from 'node:path';
import { forkBackoffRequest, guardOff, guardStatusRequest } from '../model/forkbackoff.js';
import type { ResourceLimits } from '../model/limits.js';
import { limitsVersion } from '../cgroups/cgroups.js';
import { HelperRefusal } from '../kernel/helper.js';
import type { RuntimeParts } from './parts.js';

export interface BackoffStatus {
  held: boolean;
  /** holds since the guard was (re)made */
  holds: number;
  /** refused forks (pids.events "max") */
  refusals: number;
}

/** Guards a running context (init `pid`) by its limits, or turns its guard off. */
export async function guardForks(rt: RuntimeParts, name: string, limits: ResourceLimits, pid: number): Promise<void> {
  const cg = rt.cgroupOf(name);
  const cpuDir = cg.dir('cpu');
  const pidsDir = cg.dir('pids');
  // A host without the cpu or pids controller has no bomb to hold back, or nothing to hold it with.
  if (!cpuDir || !pidsDir) return;
  const req = forkBackoffRequest({ pid, eventsFile: path.join(pidsDir, 'pids.events'), cpuDir }, limits, limitsVersion(rt.cgroupHost));
  try {
    await rt.monitor.request(req);
  } catch (e) {
    // A monitor started by an older paene (it serves until its contexts stop) may have no back-off to offer.
    if (e instanceof HelperRefusal && (e.helperCode === 'unknown-request' || e.helperCode === undefined)) return;
    throw e;
  }
}

/**
 * Ends a context's guard before it is stopped, putting back the CPU settings
 * of a hold: 1024 processes held to a few % of a CPU take seconds to die.
 */
export async function unguardForks(rt: RuntimeParts, pid: number): Promise<void> {
  await rt.monitor.tell(guardOff(pid)).catch(() => undefined);
}

/** The back-off's state for a running context; undefined when it is not guarded. */
export async function backoffStatus(rt: RuntimeParts, name: string): Promise<BackoffStatus | undefined> {
  const live = rt.store.live(name);
  if (!live) return undefined;
  let answer: string;
  try {
    answer = (await rt.monitor.tell(guardStatusRequest(live.pid))) ?? '';
  } catch {
    return undefined;
  }
  if (!answer) return undefined;
  const v = (k: string) => Number(new RegExp(`${k}=(\\d+)`).exec(answer)?.[1] ?? 0);
  return { held: v('held') === 1, holds: v('holds'), refusals: v('refusals') };
}
