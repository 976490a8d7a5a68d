// `paene bench cp` in a tiny configuration (64 MiB, one run): it copies both
// ways with both methods, checks every copy's bytes, writes figures a script
// can read and leaves nothing behind. Speed is the bench's subject, not this
// file's: no timing is asserted (docs/benchmarks.md has the figures). Bad
// input is refused before anything is made.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { CopyBenchResult } from '../../src/bench/copy.js';
import { detectCgroupHost } from '../../src/cgroups/cgroups.js';
import { Layout } from '../../src/kernel/layout.js';
import { useHostDir } from '../fixture.js';
import { describeReal, runCli } from '../helpers.js';

/** Whatever a run under `dir` could leave: the directory, its state root's cgroup parent, a process naming it. */
function leftBy(dir: string): string[] {
  const host = detectCgroupHost();
  const parent = new Layout(path.join(dir, 'state')).cgroupParent;
  const mounts = [...host.v1.values(), ...(host.unified ? [host.unified.mount] : [])];
  const procs = fs.readdirSync('/proc').filter((e) => {
    try {
      return /^\d+$/.test(e) && fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false; // gone
    }
  });
  return [dir, ...new Set(mounts.map((m) => path.join(m, parent)))].filter((p) => fs.existsSync(p)).concat(procs.map((p) => `pid ${p}`));
}

describeReal('paene bench cp', () => {
  const hd = useHostDir('cpbench');
  // the bench makes its own state root under --workdir; --root only satisfies the one CLI runner
  const bench = (workdir: string, ...args: string[]) =>
    runCli(hd.dir, ['bench', 'cp', '--workdir', workdir, ...args], { timeout: 300_000 });

  it('64 MiB both ways, both methods: every copy checked, the ratios in the JSON, nothing left', () => {
    // a workdir a shell would split or unquote: the pipelines must quote it
    const workdir = path.join(hd.dir, "work dir's");
    const json = path.join(hd.dir, 'cp.json');
    const r = bench(workdir, '--size', '64', '--runs', '1', '--json', json);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^in +paene cp FILE s:\/ .* 2\/2$/m);
    expect(r.stderr).toMatch(/^run 1\/1 /m);
    const res = JSON.parse(fs.readFileSync(json, 'utf8')) as CopyBenchResult;
    expect(res.failures).toEqual([]);
    expect(res.cleanup.errors).toEqual([]);
    expect(res.bytes).toBe(64 * 2 ** 20);
    for (const way of ['in', 'out'] as const) {
      const w = res.ways[way];
      expect([w.verified, w.copies]).toEqual([2, 2]);
      for (const x of [w.ratioBest, w.ratioMedian, w.cp.bestMBps, w.tar.bestMBps])
        expect(Number.isFinite(x) && x > 0, `${way}: ${x}`).toBe(true);
    }
    expect(leftBy(workdir)).toEqual([]);
  }, 300_000);

  it('a size or count that is no whole number >= 1, or a size with no room, is refused in a sentence, nothing made', () => {
    const workdir = path.join(hd.dir, 'bad');
    for (const [args, said] of [
      [['--size', '0'], /--size must be a whole number >= 1, got '0'/],
      [['--runs', 'x'], /--runs must be a whole number >= 1, got 'x'/],
      [['--size', '1.5'], /--size must be a whole number/],
      [['--size', '1000000000'], /the bench needs .* GiB free under .*: a smaller --size or another --workdir/],
    ] as const) {
      const r = bench(workdir, ...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(said);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(leftBy(workdir)).toEqual([]);
    }
  });
});
