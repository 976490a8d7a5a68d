// `paene cp` of a 1 GiB file in and out against the workaround it replaces
// (`tar | paene exec NAME -- tar` and back), alternating, best of three each.
// Issue 24's goal is at least 0.9x of its throughput both ways; a copy in runs
// natively in the front door (no Node start), a copy out through Node's
// extractor. This shared 2-core host's load moves single runs by tens of
// percent (0.68x out under a load of 14 where a quiet run gives 1.15x), so the
// ratios are figures the file prints, not a verdict: it asserts that both
// ways carry the whole file unchanged; docs/images.md has the figures.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { PAENE, describeMeasuring, runCli } from '../helpers.js';
import { useHostDir, useRuntime } from '../fixture.js';

const SIZE_MIB = 1024;

describeMeasuring('issue 24: paene cp throughput', () => {
  const hd = useHostDir('cpspeed-host');
  const fx = useRuntime(
    'cpspeed',
    () => {
      expect(run('create', 's', '--net', 'none').code).toBe(0);
      expect(run('start', 's').code).toBe(0);
      const big = path.join(hd.dir, 'src/big');
      fs.mkdirSync(path.dirname(big));
      expect(spawnSync('dd', ['if=/dev/urandom', `of=${big}`, 'bs=1M', `count=${SIZE_MIB}`, 'status=none']).status).toBe(0);
    },
    { setup: 300_000 },
  );
  const run = (...args: string[]) => runCli(fx.root, args, { timeout: 300_000 });

  /** Seconds a shell pipeline takes, after the last run's writes reached the disk. */
  const timed = (script: string): number => {
    spawnSync('sync');
    const t0 = process.hrtime.bigint();
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 300_000 });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    expect(r.status, r.stderr).toBe(0);
    return s;
  };

  it('1 GiB in and out against tar | paene exec -- tar: the same bytes both ways, the ratios printed', () => {
    const p = `${PAENE} --root ${fx.root}`;
    const out = path.join(hd.dir, 'out');
    const rows = { inTar: [] as number[], inCp: [] as number[], outTar: [] as number[], outCp: [] as number[] };
    for (let i = 0; i < 3; i++) {
      run('exec', 's', '--', 'rm', '-f', '/big');
      rows.inTar.push(timed(`tar -c -f - -C ${hd.dir}/src big | ${p} exec s -- busybox tar -x -f - -C /`));
      run('exec', 's', '--', 'rm', '-f', '/big');
      rows.inCp.push(timed(`${p} cp ${hd.dir}/src/big s:/`));
      fs.rmSync(out, { recursive: true, force: true });
      fs.mkdirSync(out);
      rows.outTar.push(timed(`${p} exec s -- busybox tar -c -f - -C / big | tar -x -f - -C ${out}`));
      fs.rmSync(out, { recursive: true, force: true });
      fs.mkdirSync(out);
      rows.outCp.push(timed(`${p} cp s:/big ${out}/`));
    }
    expect(spawnSync('cmp', [path.join(hd.dir, 'src/big'), path.join(out, 'big')]).status).toBe(0);
    // what paene cp put in (the last round's) is the file too: its digest inside against the host's
    const digest = (o: string) => o.trim().split(/\s+/)[0];
    const inside = run('exec', 's', '--', 'sha256sum', '/big');
    expect(inside.code, inside.stderr).toBe(0);
    expect(digest(inside.stdout)).toBe(digest(spawnSync('sha256sum', [path.join(hd.dir, 'src/big')], { encoding: 'utf8' }).stdout));
    const best = (xs: number[]) => Math.min(...xs);
    const rate = (s: number) => SIZE_MIB / s;
    const ratioIn = rate(best(rows.inCp)) / rate(best(rows.inTar));
    const ratioOut = rate(best(rows.outCp)) / rate(best(rows.outTar));
    console.log(
      `cp 1 GiB: in ${rate(best(rows.inCp)).toFixed(0)} MiB/s vs tar|exec ${rate(best(rows.inTar)).toFixed(0)} MiB/s (${ratioIn.toFixed(2)}x); ` +
        `out ${rate(best(rows.outCp)).toFixed(0)} MiB/s vs exec|tar ${rate(best(rows.outTar)).toFixed(0)} MiB/s (${ratioOut.toFixed(2)}x)`,
    );
    expect(Number.isFinite(ratioIn) && Number.isFinite(ratioOut)).toBe(true);
  }, 900_000);
});
