// Latency classes on the real kernel: the scheduling policy and slice of a
// context's processes (init, exec'd, and live changes) and cpu.idle on its cgroup.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { LOW_LATENCY_SLICE_NS } from '../../src/cgroups/map.js';
import { applyLimits } from '../../src/runtime/limits.js';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';

/** policy and se.slice of a process, as /proc/PID/sched shows them. */
function schedOfPid(pid: number): { policy: number; slice: number } {
  const t = fs.readFileSync(`/proc/${pid}/sched`, 'utf8');
  return { policy: Number(/^policy\s*:\s*(\d+)/m.exec(t)?.[1]), slice: Number(/^se\.slice\s*:\s*(\d+)/m.exec(t)?.[1] ?? NaN) };
}

describeReal('latency classes on the real kernel', () => {
  const fx = useRuntime('latency');

  it('low gives every process a short slice, batch SCHED_BATCH, live; idle sets cpu.idle; normal undoes them', async () => {
    await fx.rt.create({ name: 'lat', image: 'base', limits: { nproc: 64, cpuShare: 1024, cpuLatency: 'low' } });
    await fx.rt.start('lat');
    const bg = fx.rt.execCapture('lat', ['/bin/sh', '-c', 'sleep 20'], { timeoutMs: 30_000 });
    let pids: number[] = [];
    for (let i = 0; i < 100 && pids.length < 3; i++) {
      pids = fx.rt.cgroupOf('lat').pids();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(pids.length).toBeGreaterThanOrEqual(2); // init and the exec'd shell (and its sleep)
    const sliceKnown = !Number.isNaN(schedOfPid(pids[0] as number).slice); // se.slice is shown on 6.6+
    for (const p of pids) {
      expect(schedOfPid(p).policy).toBe(0);
      if (sliceKnown) expect(schedOfPid(p).slice).toBe(LOW_LATENCY_SLICE_NS);
    }
    await applyLimits(fx.rt, 'lat', { cpuLatency: 'batch' });
    for (const p of fx.rt.cgroupOf('lat').pids()) expect(schedOfPid(p).policy).toBe(3);
    await applyLimits(fx.rt, 'lat', { cpuLatency: 'idle' });
    const cpuDir = fx.rt
      .cgroupOf('lat')
      .dirs()
      .find((d) => fs.existsSync(path.join(d, 'cpu.idle')));
    if (cpuDir) expect(fs.readFileSync(path.join(cpuDir, 'cpu.idle'), 'utf8').trim()).toBe('1');
    await applyLimits(fx.rt, 'lat', { cpuLatency: null });
    if (cpuDir) expect(fs.readFileSync(path.join(cpuDir, 'cpu.idle'), 'utf8').trim()).toBe('0');
    for (const p of fx.rt.cgroupOf('lat').pids()) {
      expect(schedOfPid(p).policy).toBe(0);
      if (sliceKnown) expect(schedOfPid(p).slice).not.toBe(LOW_LATENCY_SLICE_NS);
    }
    await fx.rt.stop('lat', { timeoutMs: 2000 });
    await bg;
  }, 60_000);
});
