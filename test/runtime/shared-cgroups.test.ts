// The siblings' shared cgroups (v1 <parent>/_shared: memory, blkio, devices of
// contexts without limits of their own) under a racing last destroy: the
// destroy looks for a context's group, finds none yet, and removes the shared
// groups while a start that has just made them is about to join them. The start
// makes them again and starts (CI failed once on "open .../_shared/cgroup.procs:
// No such file or directory"). The moment is held still here: the shared groups
// are removed right before the start's request reaches the monitor.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';

describeReal('the shared cgroups under a racing last destroy', () => {
  const fx = useRuntime('sharedcg');

  it('a start whose shared groups vanish before it joins them makes them again and starts', async () => {
    await fx.rt.create({ name: 'sc1', image: 'base' });
    const monitor = fx.rt.monitor;
    const request = monitor.request.bind(monitor);
    const removed: string[] = [];
    monitor.request = async (args: string[]) => {
      if (args[0] === 'start' && removed.length === 0) {
        // what removeParentIfEmpty does to the shared groups, at the worst moment
        for (const f of args.filter((a) => a.endsWith('/_shared/cgroup.procs'))) {
          fs.rmdirSync(path.dirname(f));
          removed.push(path.dirname(f));
        }
      }
      return request(args);
    };
    try {
      await fx.rt.start('sc1');
    } finally {
      monitor.request = request;
    }
    // Hybrid and v1 hosts have shared groups (this machine, CI); a pure v2 host pools contexts instead.
    if (fx.rt.cgroupHost.v1.size > 0) expect(removed.length).toBeGreaterThan(0);
    for (const d of removed) expect(fs.existsSync(d), d).toBe(true);
    expect((await fx.rt.execCapture('sc1', ['/bin/echo', 'up'])).stdout.trim()).toBe('up');
    await fx.rt.destroy('sc1', { force: true });
  }, 120_000);
});
