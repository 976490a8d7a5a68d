// Bad input through the real CLI: a clear message, a distinct exit code, and
// nothing changed on the host.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeReal, tempRoot, runCli, PAENE, runCliAsync } from '../helpers.js';

describeReal('CLI bad input', () => {
  let root: string;
  const run = (...args: string[]) => runCli(root, args);
  const snapshot = () => (fs.existsSync(path.join(root, 'contexts')) ? fs.readdirSync(path.join(root, 'contexts')).sort() : []);

  beforeAll(() => {
    root = tempRoot('badinput');
    expect(run('create', 'good', '--xid', '100').code).toBe(0);
  }, 180_000);

  afterAll(() => {
    run('destroy', '--force', 'good');
    run('destroy', '--force', 'racer');
    spawnSync(process.execPath, [
      '-e',
      `import('${path.resolve('dist/runtime/open.js')}').then(m => m.openRuntime('${root}').shutdownMonitor())`,
    ]);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it.each([
    [['create', 'Bad_Name'], 2, /invalid context name 'Bad_Name'/],
    [['create', '-dash'], 2, /invalid context name|unknown option/],
    [['create', 'x'.repeat(64)], 2, /invalid context name/],
    [['create', 'ok1', '--xid', '1'], 2, /invalid xid '1': must be a whole number from 2 to 49151/],
    [['create', 'ok1', '--xid', '49152'], 2, /invalid xid/],
    [['create', 'ok1', '--xid', 'abc'], 2, /invalid xid/],
    [['create', 'ok1', '--hostname', 'bad host'], 2, /invalid hostname/],
    [['create', 'ok1', '--cap-add', 'CAP_NOPE'], 2, /unknown capability/],
    [['create', 'good'], 4, /a context named 'good' already exists/],
    [['create', 'other', '--xid', '100'], 4, /xid 100 is already used by context 'good'/],
    [['create', 'ok2', '--image', 'no-such-image'], 3, /no-such-image/],
    [['start', 'ghost'], 3, /no context named 'ghost' \(known: good\)/],
    [['exec', 'ghost', '--', 'true'], 3, /no context named 'ghost'/],
    [['exec', 'good', '--', 'true'], 5, /context 'good' is not running/],
    [['ps', 'good'], 5, /not running/],
    [['status', 'ghost'], 3, /no context named/],
    [['destroy', 'ghost'], 3, /no context named/],
    [['frobnicate'], 2, /unknown command/],
  ])('%j fails with exit %i and a clear message, changing nothing', (args, code, message) => {
    const before = snapshot();
    const r = run(...(args as string[]));
    expect(r.stderr).toMatch(message as RegExp);
    expect(r.code).toBe(code);
    expect(snapshot()).toEqual(before);
  });

  it('start on a running context is refused; exec passes the exit code through', () => {
    expect(run('start', 'good').code).toBe(0);
    const ex = run('exec', 'good', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3');
    expect(ex).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(run('exec', 'good', 'hostname').stdout).toBe('good\n');
    const r = run('start', 'good');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/already running/);
    expect(run('stop', 'good').code).toBe(0);
  });

  it('refuses privileged verbs when not root, changing nothing', () => {
    const before = snapshot();
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', PAENE, '--root', root, 'create', 'nobody1'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toMatch(/needs root/);
    expect(r.status).toBe(7);
    expect(snapshot()).toEqual(before);
  });

  it('serializes racing CLIs: two concurrent starts give one start and one clear refusal', async () => {
    expect(run('create', 'racer').code).toBe(0);
    const one = () => runCliAsync(root, ['start', 'racer']);
    const results = await Promise.all([one(), one(), one()]);
    const codes = results.map((r) => r.code).sort();
    expect(codes).toEqual([0, 5, 5]);
    for (const r of results.filter((x) => x.code === 5)) expect(r.stderr).toMatch(/already running/);
    const list = JSON.parse(run('list', '--json').stdout) as { name: string; state: string; processes: number }[];
    const racer = list.find((s) => s.name === 'racer');
    expect(racer?.state).toBe('running');
    expect(racer?.processes).toBe(1);
    expect(run('destroy', 'racer').code).toBe(0);
  });

  it('list --json and status --json are machine-readable', () => {
    const list = JSON.parse(run('list', '--json').stdout) as { name: string; xid: number; state: string }[];
    expect(list.find((s) => s.name === 'good')).toMatchObject({ xid: 100, state: 'stopped' });
    const st = JSON.parse(run('status', 'good', '--json').stdout) as { config: { xid: number } };
    expect(st.config.xid).toBe(100);
  });
});
