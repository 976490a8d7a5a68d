// `paene limit` and `paene stats` through the real CLI: a live change reaches
// the kernel and the config, and a guest feels it at once.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openRuntime } from '../../src/runtime/open.js';
import type { Runtime } from '../../src/runtime/runtime.js';
import { describeReal, disposeRuntime, tempRoot } from '../helpers.js';

describeReal('CLI limit and stats', () => {
  let root: string;
  let rt: Runtime;
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [path.resolve('bin/paene.js'), '--root', root, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(() => {
    root = tempRoot('limits');
    rt = openRuntime(root);
    expect(run('create', 'lim', '--nproc', '50').code).toBe(0);
    expect(run('start', 'lim').code).toBe(0);
  }, 180_000);
  afterAll(() => disposeRuntime(rt, root));

  it('applies a limit live and persists it', async () => {
    const r = run('limit', 'lim', '--nproc', '8', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ live: true, limits: { nproc: 8 } });
    expect(rt.cgroupOf('lim').read('pids', 'pids.max')).toBe('8');
    expect(rt.config('lim').limits.nproc).toBe(8);
    // the guest feels it: at most 8 processes, the 9th fork fails
    const g = await rt.execCapture('lim', ['/bin/sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; wait'], { timeoutMs: 30_000 });
    expect(g.stdout + g.stderr).toMatch(/fork|Resource temporarily unavailable|Cannot/i);
  });

  it('shows limits without flags, and refuses bad values without changing anything', () => {
    expect(run('limit', 'lim').stdout).toMatch(/processes: 8/);
    const bad = run('limit', 'lim', '--nproc', 'lots');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/nproc/);
    expect(rt.config('lim').limits.nproc).toBe(8);
    expect(run('limit', 'ghost', '--nproc', '5').code).toBe(3);
  });

  it('stats --json reports the running context', () => {
    const r = run('stats', '--json');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; processes: number; processLimit: number; memoryBytes: number }[];
    const row = rows.find((x) => x.name === 'lim');
    expect(row).toBeDefined();
    expect(row?.processes).toBeGreaterThanOrEqual(1);
    expect(row?.processLimit).toBe(8);
    expect(row?.memoryBytes).toBeGreaterThan(0);
  });
});
