// `paene profile` and `create --profile` as a user runs them (the native
// front door, then the Node CLI): the verbs, their refusals and exit codes,
// and what a create makes of several profiles and its own flags.

import { expect, it } from 'vitest';
import { describeReal, runCli } from '../helpers.js';
import { useRuntime } from '../fixture.js';

describeReal('paene profile and create --profile', () => {
  const fx = useRuntime('profile-cli');
  const run = (...args: string[]) => runCli(fx.root, args);

  it('creates, lists, shows, edits and removes profiles; refuses what a profile cannot hold', () => {
    const c = run('profile', 'create', 'web', '--memory', '512M', '--restart', 'always', '--env', 'A=1', '--caps', 'strict', '--json');
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toEqual({ name: 'web', settings: { caps: 'strict', env: ['A=1'], restart: 'always', memory: '512M' } });
    expect(run('profile', 'create', 'tz', '--env', 'TZ=UTC', '--env', 'A=2', '--nproc', '300').code).toBe(0);
    expect(run('profile', 'ls').stdout).toMatch(/^NAME +SETTINGS\ntz +--env TZ=UTC --env A=2 --nproc 300\nweb +--caps strict/);
    const e = run('profile', 'edit', 'web', '--unset', 'restart', '--cpu', '50%', '--json');
    expect(JSON.parse(e.stdout).settings).toEqual({ caps: 'strict', env: ['A=1'], cpu: '50%', memory: '512M' });
    expect(run('profile', 'show', 'web').stdout).toBe("the profile 'web': --caps strict --env A=1 --cpu 50% --memory 512M\n");
    // refusals: their sentences and exit codes, no stack trace
    for (const [args, code, re] of [
      [['profile', 'create', 'bad', '--memory', 'lots'], 2, /invalid --memory 'lots'/],
      [['profile', 'create', 'bad', '--ip', '127.0.0.9'], 2, /--ip names one context's own/],
      [['profile', 'create', 'bad', '--net', 'none', '--egress', 'nat'], 2, /egress/],
      [['profile', 'create', 'Bad'], 2, /invalid profile name 'Bad'/],
      [['profile', 'create', 'web'], 4, /profile 'web' exists/],
      [['profile', 'edit', 'web'], 2, /wants a setting to change/],
      [['profile', 'edit', 'web', '--unset', 'colour'], 2, /'colour' is not a profile setting/],
      [['profile', 'show', 'ghost'], 3, /no profile 'ghost'/],
    ] as const) {
      const r = run(...args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(/at .*\.m?js:\d+/);
    }
  });

  it('create applies the profiles in order under its own flags, and copies them: removing one changes no context', () => {
    const c = run('create', 'paene-pc1', '--profile', 'web', '--profile', 'tz', '--memory', '256M', '--net', 'none', '--json');
    expect(c.code, c.stderr).toBe(0);
    const cfg = JSON.parse(c.stdout);
    expect(cfg.caps.profile).toBe('strict'); // web's
    expect(cfg.limits).toMatchObject({ memory: 256 * 2 ** 20, nproc: 300, cpu: { fillRate: 50 } }); // the flag, tz's, web's
    expect(cfg.main.env).toEqual({ A: '2', TZ: 'UTC' }); // lists add up, the later KEY wins
    // a command after -- wins over a profile's --cmd; --no-cmd of a profile applies otherwise
    expect(run('profile', 'create', 'quiet', '--no-cmd').code).toBe(0);
    expect(JSON.parse(run('create', 'paene-pc2', '--profile', 'quiet', '--net', 'none', '--json').stdout).main).toBe('none');
    const withCmd = run('create', 'paene-pc3', '--profile', 'quiet', '--net', 'none', '--json', '--', 'sleep', '9');
    expect(withCmd.code, withCmd.stderr).toBe(0);
    expect(JSON.parse(withCmd.stdout).main).toEqual({ argv: ['sleep', '9'] });
    expect(run('profile', 'rm', 'web', 'tz').code).toBe(0);
    expect(fx.rt.config('paene-pc1').limits.nproc).toBe(300);
    const gone = run('create', 'paene-pc4', '--profile', 'web');
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/no profile 'web'/);
    expect(fx.rt.store.names()).toEqual(['paene-pc1', 'paene-pc2', 'paene-pc3']);
  }, 120_000);
});
