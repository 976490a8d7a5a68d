// The root's scratch tmpfs (kernel/scratch.ts) under racing CLIs: starts in
// separate processes on a root where it is not mounted yet mount it once,
// never two stacked (the second would hide the first start's directories
// before its helper bound them), and the last destroy unmounts it.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { prepareScratch } from '../../src/kernel/scratch.js';
import { describeReal, runCliAsync } from '../helpers.js';
import { useRuntime } from '../fixture.js';

/** How many mounts sit on dir in this mount namespace. */
function mountsOn(dir: string): number {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === dir).length;
}

describeReal('the scratch tmpfs under racing starts', () => {
  const runAsync = (args: string[]) => runCliAsync(fx.root, args);

  const fx = useRuntime('scratch');

  it('six starts in six processes mount it once and all start; destroying the last context unmounts it', async () => {
    const names = ['s0', 's1', 's2', 's3', 's4', 's5'];
    for (let round = 0; round < 3; round++) {
      for (const n of names) await fx.rt.create({ name: n, image: 'base', net: { mode: 'none', addresses: [], publish: [] } });
      expect(mountsOn(fx.rt.layout.scratchDir), 'not mounted before the first start').toBe(0);
      const results = await Promise.all(names.map((n) => runAsync(['start', n])));
      for (const r of results) expect(r.code, `${r.args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(mountsOn(fx.rt.layout.scratchDir)).toBe(1);
      // each context sees its own /tmp from the one scratch tmpfs
      for (const n of names) expect(fs.existsSync(path.join(fx.rt.layout.scratchOf(n), 'tmp'))).toBe(true);
      await Promise.all(names.map((n) => runAsync(['destroy', '--force', n])));
      expect(fx.rt.store.names()).toEqual([]);
      expect(mountsOn(fx.rt.layout.scratchDir), 'unmounted with the last context').toBe(0);
    }
  }, 240_000);

  it('a start that sees the tmpfs mounted before the start that mounted it made its empty directory takes the lock and finds it made', async () => {
    // The moment between another start's mount and its mkdir of .empty, held still: mounted, no .empty.
    const dir = fx.rt.layout.scratchDir;
    expect(mountsOn(dir)).toBe(0);
    fs.mkdirSync(dir, { recursive: true });
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'paene-scratch', dir]).status).toBe(0);
    try {
      let locked = 0;
      const s = await prepareScratch(fx.rt.layout, 'probe', async (fn) => {
        locked++;
        return fn();
      });
      s.release();
      expect(locked).toBe(1);
      expect(fs.readdirSync(fx.rt.layout.emptyDir)).toEqual([]);
      expect(fs.existsSync(path.join(fx.rt.layout.scratchOf('probe'), 'tmp'))).toBe(true);
      expect(mountsOn(dir)).toBe(1);
    } finally {
      spawnSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
