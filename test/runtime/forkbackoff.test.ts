// The fork back-off on the real kernel (core/forkbackoff, the monitor's
// forkbackoff.h): a spinning fork bomb in a default context is held to a
// small CPU quota, the host still forks, the hold is lifted when the bomb
// ends, `paene limit` turns it off or changes it live, and stop ends a held
// context. Only what the mechanism guarantees, with margins for a loaded
// 2-core machine: no timing verdict (that is `paene check isolation`).

import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { FORK_BACKOFF } from '../../src/model/forkbackoff.js';
import { DEFAULT_LIMITS } from '../../src/model/limits.js';
import { nativePath } from '../../src/kernel/helper.js';
import { backoffStatus } from '../../src/runtime/forkbackoff.js';
import { statsRows } from '../../src/runtime/stats.js';
import { applyLimits } from '../../src/runtime/limits.js';
import { describeMeasuring } from '../helpers.js';
import { useRuntime } from '../fixture.js';

describeMeasuring('fork back-off on the real kernel', () => {
  const fx = useRuntime('forkbackoff');

  /** The CPU quota file of a context and what it reads when there is no quota. */
  const quotaOf = (name: string) => {
    const dir = fx.rt.cgroupOf(name).dir('cpu') as string;
    const v1 = fs.existsSync(path.join(dir, 'cpu.cfs_quota_us'));
    const file = path.join(dir, v1 ? 'cpu.cfs_quota_us' : 'cpu.max');
    return {
      read: () => fs.readFileSync(file, 'utf8').trim(),
      held: (pct: number) => (v1 ? String(pct * 1000) : `${pct * 1000} 100000`),
      free: v1 ? '-1' : 'max 100000',
    };
  };

  async function until(what: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await what()) return true;
    return what();
  }

  async function bombing(name: string, seconds: number) {
    await fx.rt.execCapture(name, ['/bin/sh', '-c', 'cat > /tmp/iso-load && chmod 755 /tmp/iso-load'], {
      input: fs.readFileSync(nativePath('iso-load')),
    });
    // Bounded: the default nproc 1024 holds it, and every process exits after `seconds`.
    return { done: fx.rt.execCapture(name, ['/tmp/iso-load', 'forkbomb', String(seconds)], { timeoutMs: 120_000 }) };
  }

  /** Held: within the monitor's 1 s look, and within 15 s on a busy host or emulated CPUs (the v2 VM). */
  const held = (name: string) => until(async () => (await backoffStatus(fx.rt, name))?.held === true, 15_000);

  /** Ends the bomb early: frozen, every process but the init killed by pid, thawed. */
  async function endBomb(name: string): Promise<void> {
    const cg = fx.rt.cgroupOf(name);
    const init = fx.rt.store.live(name)?.pid;
    await cg.freeze();
    for (const p of cg.pids()) {
      if (p === init) continue;
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    cg.thaw();
  }

  it('a spinning bomb in a default context is held to the back-off quota, the host still forks, and the hold is lifted after the bomb', async () => {
    await fx.rt.create({ name: 'fb', image: 'base', limits: DEFAULT_LIMITS });
    await fx.rt.start('fb');
    const q = quotaOf('fb');
    expect(q.read()).toBe(q.free);
    expect(await backoffStatus(fx.rt, 'fb')).toEqual({ held: false, holds: 0, refusals: 0 });
    const run = await bombing('fb', 30);
    expect(await held('fb')).toBe(true);
    // `paene stats` shows the hold (its rows carry the back-off's state)
    const statsHeld = async () => (await statsRows(fx.rt, ['fb'], new Map(), new Map()))[0]?.forkBackoff?.held === true;
    expect(await until(statsHeld, 15_000)).toBe(true);
    // read while held: a bomb still running runs free ~50 ms between holds, so wait for a held reading
    expect(await until(() => q.read() === q.held(FORK_BACKOFF.defaultPercent), 15_000)).toBe(true);
    const cg = fx.rt.cgroupOf('fb');
    expect(Number(cg.read('pids', 'pids.current'))).toBeLessThanOrEqual(1024);
    for (let i = 0; i < 20; i++) expect(spawnSync('/bin/true').status).toBe(0);
    await endBomb('fb');
    await run.done;
    expect(await until(() => cg.pids().length <= 1, 30_000)).toBe(true);
    // ... and with no more refused forks the hold ends and the old settings come back.
    expect(await until(() => q.read() === q.free, FORK_BACKOFF.holdMs + 10_000)).toBe(true);
    const st = await backoffStatus(fx.rt, 'fb');
    expect(st?.held).toBe(false);
    expect(st?.holds).toBeGreaterThanOrEqual(1);
    expect(st?.refusals).toBeGreaterThan(FORK_BACKOFF.trigger);
    expect((await fx.rt.execCapture('fb', ['/bin/echo', 'alive'])).stdout.trim()).toBe('alive');
  }, 300_000);

  it('paene limit turns it off and changes the hold live; stop ends a held context and leaves no process', async () => {
    await applyLimits(fx.rt, 'fb', { forkBackoff: 0 });
    expect(await backoffStatus(fx.rt, 'fb')).toBeUndefined();
    await applyLimits(fx.rt, 'fb', { forkBackoff: 20 });
    expect((await backoffStatus(fx.rt, 'fb'))?.holds).toBe(0);
    const q = quotaOf('fb');
    const run = await bombing('fb', 30);
    expect(await held('fb')).toBe(true);
    expect(await until(() => q.read() === q.held(20), 15_000)).toBe(true);
    const cg = fx.rt.cgroupOf('fb');
    await fx.rt.stop('fb', { timeoutMs: 2000 });
    await run.done;
    expect(cg.exists()).toBe(false);
    expect(fx.rt.store.live('fb')).toBeUndefined();
  }, 300_000);
});
