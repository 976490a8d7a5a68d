// `limit` and `config` over many contexts (issue 24): several names, a
// pattern or --all, like the lifecycle verbs; each reported, the exit code
// the failures'.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal, runCli } from '../helpers.js';
import { useRuntime } from '../fixture.js';

describeReal('issue 24: limit and config take patterns and --all', () => {
  const fx = useRuntime('limitmany', () => {
    for (const n of ['web1', 'web2', 'db1']) expect(run('create', n, '--net', 'none').code).toBe(0);
  });
  const run = (...args: string[]) => runCli(fx.root, args);
  const config = (n: string) => JSON.parse(fs.readFileSync(path.join(fx.root, 'contexts', n, 'config.json'), 'utf8'));

  it("limit 'web*' changes each web context and no other; limit --all every one", () => {
    const r = run('limit', 'web*', '--nproc', '50');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      "saved; 'web1' is stopped and gets them at its next start\nsaved; 'web2' is stopped and gets them at its next start\n",
    );
    expect([config('web1').limits.nproc, config('web2').limits.nproc]).toEqual([50, 50]);
    expect(config('db1').limits.nproc).not.toBe(50);
    expect(run('limit', '--all', '--cpu-share', '2048').code).toBe(0);
    for (const n of ['web1', 'web2', 'db1']) expect(config(n).limits.cpuShare).toBe(2048);
    const shown = JSON.parse(run('limit', 'web1', 'db1', '--json').stdout);
    expect(shown.map((x: { name: string; ok: boolean }) => [x.name, x.ok])).toEqual([
      ['web1', true],
      ['db1', true],
    ]);
    // one name prints as it always did
    expect(JSON.parse(run('limit', 'web1', '--json').stdout)).toMatchObject({ name: 'web1', limits: { nproc: 50 } });
  });

  it('an unknown name among several fails alone, with its exit code; the others are changed', () => {
    const r = run('limit', 'web1', 'ghost', '--nproc', '60');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/ghost: no context named 'ghost'/);
    expect(config('web1').limits.nproc).toBe(60);
  });

  it("config 'web*' and --all", () => {
    const r = run('config', 'web*', '--ccap', 'SET_UTSNAME');
    expect(r.code).toBe(0);
    expect([config('web1').ccaps, config('web2').ccaps, config('db1').ccaps]).toEqual([['SET_UTSNAME'], ['SET_UTSNAME'], []]);
    expect(run('config', '--all', '--drop-ccap', 'SET_UTSNAME').code).toBe(0);
    for (const n of ['web1', 'web2', 'db1']) expect(config(n).ccaps).toEqual([]);
    expect(run('config', '--all').stdout).toMatch(/^db1: caps: .*\ndb1: ccaps: \(none\)\n(db1: .*\n)*web1: caps/); // each context's lines together, in name order
  });
});
