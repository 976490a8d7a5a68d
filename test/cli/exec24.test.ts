// `paene exec` as issue 24 asks: -u NAME[:GROUP] from the guest's own
// /etc/passwd and /etc/group (never through a guest symlink to a host file),
// --env-file, --detach. Through the native front door, which must hand these
// calls to Node rather than misread them.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal, runCli } from '../helpers.js';
import { useHostDir, useRuntime } from '../fixture.js';

describeReal('issue 24: exec -u NAME, --env-file, --detach', () => {
  const fx = useRuntime('exec24', () => {
    expect(run('create', 'x', '--net', 'none').code).toBe(0);
    expect(run('start', 'x').code).toBe(0);
  });
  const hd = useHostDir('exec24-host');
  const run = (...args: string[]) => runCli(fx.root, args);

  it('-u NAME and NAME:GROUP from the image, and a user the guest added itself', () => {
    expect(run('exec', '-u', 'nobody', 'x', '--', 'id', '-u').stdout).toBe('65534\n');
    expect(run('exec', '--user=nobody:nogroup', 'x', '--', 'id', '-g').stdout).toBe('65534\n');
    const add = run(
      'exec',
      'x',
      '--',
      'sh',
      '-c',
      'echo "alice:x:1234:1234::/:/bin/sh" >> /etc/passwd; echo "staff2:x:2345:" >> /etc/group',
    );
    expect(add.code).toBe(0);
    expect(run('exec', '-u', 'alice', 'x', '--', 'id', '-u').stdout).toBe('1234\n');
    expect(run('exec', '-u', 'alice:staff2', 'x', '--', 'sh', '-c', 'echo $(id -u):$(id -g)').stdout).toBe('1234:2345\n');
    expect(run('exec', '-u', '1000:1000', 'x', '--', 'id', '-u').stdout).toBe('1000\n');
  });

  it('an unknown user or group is refused with a clear message, and nothing runs', () => {
    const r = run('exec', '-u', 'bob', 'x', '--', 'touch', '/ran');
    expect(r.stderr).toMatch(/user "bob" is not in \/etc\/passwd of context 'x'/);
    expect(r.code).toBe(2);
    expect(run('exec', '-u', 'nobody:nosuchgroup', 'x', '--', 'true').stderr).toMatch(/group "nosuchgroup" is not in \/etc\/group/);
    expect(run('exec', '-u', 'bad name', 'x', '--', 'true').code).toBe(2);
    expect(run('exec', 'x', '--', 'test', '-e', '/ran').code).toBe(1);
  });

  it("a guest's /etc/passwd that is a symlink to a host path is not followed on the host", () => {
    const evil = path.join(hd.dir, 'passwd');
    fs.writeFileSync(evil, 'evil:x:0:0::/:/bin/sh\n');
    expect(run('exec', 'x', '--', 'sh', '-c', `cp /etc/passwd /etc/passwd.real && ln -sf ${evil} /etc/passwd`).code).toBe(0);
    try {
      const r = run('exec', '-u', 'evil', 'x', '--', 'id', '-u');
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    } finally {
      run('exec', 'x', '--', 'sh', '-c', 'rm /etc/passwd && mv /etc/passwd.real /etc/passwd');
    }
  });

  it('--env-file: KEY=VALUE lines, # comments, a bare KEY from the caller, -e wins', () => {
    const f = path.join(hd.dir, 'env');
    fs.writeFileSync(f, '# a comment\nA=1\nB= two  words\n\n  # indented comment\nC\nD=x=y\n');
    const r = runCli(fx.root, ['exec', '--env-file', f, '-e', 'A=9', 'x', '--', 'sh', '-c', 'echo "$A|$B|$C|$D"'], {
      env: { ...process.env, C: 'from-caller' },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('9| two  words|from-caller|x=y\n');
    fs.writeFileSync(f, 'not a key=1\n');
    expect(run('exec', '--env-file', f, 'x', '--', 'true').stderr).toMatch(/--env-file .*:1: not KEY=VALUE/);
    expect(run('exec', '--env-file', path.join(hd.dir, 'missing'), 'x', '--', 'true').code).toBe(3);
  });

  it('--detach returns at once with the pid; the command runs on in the context', () => {
    const t0 = Date.now();
    const r = run('exec', '-d', 'x', '--', 'sh', '-c', 'sleep 8; echo done > /detached');
    expect(Date.now() - t0).toBeLessThan(6000); // it did not wait for the command's 8 s
    expect(r.code).toBe(0);
    const m = /^pid (\d+) in 'x' \(host pid (\d+)\)\n$/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    const hostPid = Number(m?.[2]);
    expect(fs.readFileSync(`/proc/${hostPid}/cgroup`, 'utf8')).toMatch(/x/);
    expect(run('exec', 'x', '--', 'sh', '-c', `kill -0 ${m?.[1]}`).code).toBe(0);
    expect(run('exec', 'x', '--', 'cat', '/detached').code).toBe(1); // not yet
    const until = Date.now() + 15_000;
    let out = '';
    while (Date.now() < until && (out = run('exec', 'x', '--', 'cat', '/detached').stdout) === '') spawnSync('sleep', ['0.3']);
    expect(out).toBe('done\n');
    const missing = run('exec', '--detach', 'x', '--', 'no-such-program');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/no-such-program: not found/);
  });

  // The verdict comes from the command's execve itself (a close-on-exec pipe of the helper's child), not from
  // how long the helper has not exited: in a context whose CPU is capped to 1% of a CPU, a missing program
  // takes its time to fail (the context's cgroup is throttled), and a real one its time to start.
  it('--detach in a context capped at 1% CPU: a missing program is "not found" and a present one starts, every time', () => {
    expect(run('create', 'slow', '--net', 'none', '--cpu', '1%').code).toBe(0);
    expect(run('start', 'slow').code).toBe(0);
    for (let i = 0; i < 4; i++) {
      const missing = run('exec', '--detach', 'slow', '--', 'no-such-program');
      expect(missing.stderr).toMatch(/no-such-program: not found in context 'slow'/);
      expect(missing.code).toBe(3);
      const present = run('exec', '--detach', 'slow', '--', 'sleep', '20');
      expect(present.code, present.stderr).toBe(0);
      const hostPid = Number(/\(host pid (\d+)\)/.exec(present.stdout)?.[1]);
      expect(fs.readFileSync(`/proc/${hostPid}/cmdline`, 'utf8')).toBe('sleep\x0020\x00');
      process.kill(hostPid, 'SIGKILL');
    }
  });
});
