// The cgroup adapter on the real kernel, in each of its three modes. This
// host is hybrid; restricting the adapter's view of it exercises the v1-only
// path (freezer + SIGKILL) and the pure-v2 path (cgroup.freeze, cgroup.kill)
// for real.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { type CgroupHost, ContextCgroup, detectCgroupHost, removeParentIfEmpty } from '../../src/cgroups/cgroups.js';
import { isAlive } from '../../src/kernel/procfs.js';
import { describeReal } from '../helpers.js';

const PARENT = `paene-cgtest-${process.pid}`;

function views(): [string, CgroupHost][] {
  const host = detectCgroupHost();
  const out: [string, CgroupHost][] = [[host.layout, host]];
  if (host.v1.size > 0) out.push(['v1 only', { layout: 'v1', v1: host.v1, unified: undefined }]);
  if (host.unified && host.layout !== 'v2')
    out.push(['v2 only (unified hierarchy)', { layout: 'v2', v1: new Map(), unified: { ...host.unified, controllers: [] } }]);
  return out;
}

/** A process tree that tries to escape a process-group kill: a child in its own session. */
function startTree(procsFiles: string[]): number {
  const script = `for f in ${procsFiles.join(' ')}; do echo $$ > $f; done; setsid sleep 300 & sleep 300 & wait`;
  const c = spawn('/bin/sh', ['-c', script], { stdio: 'ignore', detached: true });
  c.unref();
  return c.pid as number;
}

describeReal('cgroup adapter on the real kernel', () => {
  const made: ContextCgroup[] = [];
  afterEach(async () => {
    for (const cg of made.splice(0)) {
      await cg.killAll().catch(() => undefined);
      await cg.remove().catch(() => undefined);
      removeParentIfEmpty(cg.host, PARENT);
    }
  });

  for (const [label, host] of views()) {
    it(`${label}: creates, holds a process tree, freezes, kills every process (also setsid ones) and removes`, async () => {
      const cg = new ContextCgroup(host, PARENT, 'ctx');
      made.push(cg);
      cg.create();
      for (const f of cg.procsFiles()) expect(fs.existsSync(f)).toBe(true);
      const pid = startTree(cg.procsFiles());
      for (let i = 0; i < 200 && cg.pids().length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      const pids = cg.pids();
      expect(pids.length).toBe(3);
      expect(pids).toContain(pid);

      await cg.freeze();
      const frozen = pids.map((p) => fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1][0]);
      expect(frozen.every((s) => s === 'S' || s === 'D' || s === 'T')).toBe(true);
      cg.thaw();

      await cg.killAll();
      expect(cg.pids()).toEqual([]);
      for (const p of pids) expect(isAlive(p)).toBe(false);
      await cg.remove();
      for (const d of cg.dirs()) expect(fs.existsSync(d)).toBe(false);
      made.pop();
      removeParentIfEmpty(host, PARENT);
    });
  }

  for (const [label, host] of views().filter(([, h]) => h.v1.has('memory'))) {
    it(`${label}: siblings share the memory, blkio and devices groups; a kill stays in its context; adopt moves one into its own`, async () => {
      const a = new ContextCgroup(host, PARENT, 'share-a');
      const b = new ContextCgroup(host, PARENT, 'share-b');
      made.push(a, b);
      const rules = [
        { controller: 'devices', file: 'devices.deny', value: 'a' },
        { controller: 'devices', file: 'devices.allow', value: 'c 1:3 rwm' },
      ];
      a.create([], rules);
      b.create([], rules);
      const shared = a.sharedDir('memory') as string;
      expect(b.sharedDir('memory')).toBe(shared);
      expect(a.owns('memory')).toBe(false);
      expect(a.procsFiles()).toContain(`${shared}/cgroup.procs`);
      // the shared devices group was made with its rules before anyone could join it
      expect(fs.readFileSync(`${a.sharedDir('devices')}/devices.list`, 'utf8').trim()).toBe('c 1:3 rwm');
      const pa = startTree(a.procsFiles());
      const pb = startTree(b.procsFiles());
      for (let i = 0; i < 200 && (a.pids().length < 3 || b.pids().length < 3); i++) await new Promise((r) => setTimeout(r, 10));
      expect(a.pids()).toContain(pa);
      expect(a.pids()).not.toContain(pb);
      // both are in the one shared memory group
      const inShared = fs.readFileSync(`${shared}/cgroup.procs`, 'utf8');
      expect(inShared).toMatch(new RegExp(`^${pa}$`, 'm'));
      expect(inShared).toMatch(new RegExp(`^${pb}$`, 'm'));
      // a limit on a shared controller is refused until the context owns the group
      expect(() => a.apply([{ controller: 'memory', file: 'memory.limit_in_bytes', value: String(64 * 2 ** 20) }])).toThrow(
        /shares the memory cgroup/,
      );
      await a.adopt('memory');
      expect(a.owns('memory')).toBe(true);
      const own = fs.readFileSync(`${a.dir('memory')}/cgroup.procs`, 'utf8');
      for (const p of a.pids()) expect(own).toMatch(new RegExp(`^${p}$`, 'm'));
      expect(own).not.toMatch(new RegExp(`^${pb}$`, 'm'));
      a.apply([{ controller: 'memory', file: 'memory.limit_in_bytes', value: String(64 * 2 ** 20) }]);
      // killing a leaves b alone
      await a.killAll();
      expect(isAlive(pa)).toBe(false);
      expect(isAlive(pb)).toBe(true);
      await a.remove();
      removeParentIfEmpty(host, PARENT); // b still there: the shared groups stay
      expect(fs.existsSync(shared)).toBe(true);
      await b.killAll();
      await b.remove();
      made.splice(0);
      removeParentIfEmpty(host, PARENT);
      expect(fs.existsSync(shared)).toBe(false);
      for (const d of [...a.dirs(), ...b.dirs()]) expect(fs.existsSync(d)).toBe(false);
    });
  }

  // Only where cgroup v2 has the memory controller (a pure v2 host such as ../shared/v2vm; not this hybrid one).
  for (const [label, host] of views().filter(([, h]) => h.v1.size === 0 && h.unified?.controllers.includes('memory'))) {
    it(`${label}: a context without a memory limit lives in the pool, without a memory cgroup of its own`, async () => {
      const pooled = new ContextCgroup(host, PARENT, 'pooled');
      const own = new ContextCgroup(host, PARENT, 'own');
      made.push(pooled, own);
      pooled.create([]);
      own.create(['memory']);
      expect(pooled.unifiedDir).toMatch(/\/_pool\/pooled$/);
      expect(pooled.owns('memory')).toBe(false);
      expect(fs.existsSync(`${pooled.unifiedDir}/memory.max`)).toBe(false);
      expect(own.owns('memory')).toBe(true);
      expect(fs.existsSync(`${own.unifiedDir}/memory.max`)).toBe(true);
      // a fresh view of the same context finds it in the pool
      expect(new ContextCgroup(host, PARENT, 'pooled').unifiedDir).toBe(pooled.unifiedDir);
      const pid = startTree(pooled.procsFiles());
      for (let i = 0; i < 200 && pooled.pids().length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      expect(pooled.pids()).toContain(pid);
      await expect(pooled.adopt('memory')).rejects.toThrow(/stop it, set the limit, start it/);
      await pooled.killAll();
      await pooled.remove();
      await own.remove();
      made.splice(0);
      removeParentIfEmpty(host, PARENT);
      expect(fs.existsSync(`${host.unified?.mount}/${PARENT}`)).toBe(false);
    });
  }
});
