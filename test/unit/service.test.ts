// The guest-service model (model/service.ts): restart policies, inits, the
// main process's spec; create's --cmd splitting; the guest init's path
// resolved inside an image tree, never out of it.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { splitCommand } from '../../src/cli/context.js';
import { validateConfig, newConfig } from '../../src/context/config.js';
import { classifyInit, describeMain, formatRestart, parseInit, parseRestart, validateLog, validateMain } from '../../src/model/service.js';
import { guestInitFlavor, resolveInTree } from '../../src/runtime/guestinit.js';

describe('restart policies', () => {
  it("parses docker's forms and refuses the rest with the forms named", () => {
    expect(parseRestart('no')).toEqual({ mode: 'no' });
    expect(parseRestart('always')).toEqual({ mode: 'always' });
    expect(parseRestart('unless-stopped')).toEqual({ mode: 'unless-stopped' });
    expect(parseRestart('on-failure')).toEqual({ mode: 'on-failure' });
    expect(parseRestart('on-failure:3')).toEqual({ mode: 'on-failure', maxRestarts: 3 });
    expect(formatRestart(parseRestart('on-failure:3'))).toBe('on-failure:3');
    for (const bad of ['sometimes', 'always:3', 'on-failure:0', 'on-failure:-1', 'on-failure:x', '', 'on-failure:99999999'])
      expect(() => parseRestart(bad)).toThrow(/--restart/);
  });
});

describe('inits', () => {
  it('paene, guest, or an absolute path in the guest', () => {
    expect(parseInit('paene')).toEqual({ kind: 'paene' });
    expect(parseInit('guest')).toEqual({ kind: 'guest', path: '/sbin/init' });
    expect(parseInit('/lib/sysvinit/init')).toEqual({ kind: 'guest', path: '/lib/sysvinit/init' });
    for (const bad of ['systemd', 'sbin/init', '/../init', '']) expect(() => parseInit(bad)).toThrow(/--init/);
  });

  it('classifies busybox and sysvinit, refuses systemd and unknown programs with a reason', () => {
    expect(classifyInit('/bin/busybox', '')).toBe('busybox');
    expect(classifyInit('/sbin/init', 'xx INIT_VERSION=sysvinit-3.06 xx')).toBe('sysvinit');
    expect(classifyInit('/usr/lib/systemd/systemd', 'SYSTEMD_')).toMatchObject({ refused: expect.stringMatching(/systemd does not boot/) });
    expect(classifyInit('/bin/dash', '\x7fELF')).toMatchObject({ refused: expect.stringMatching(/not an init/) });
  });

  it("finds the guest's init inside the tree: symlinks followed there, never to the host", () => {
    const t = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-unit-init-'));
    try {
      fs.mkdirSync(path.join(t, 'bin'));
      fs.mkdirSync(path.join(t, 'sbin'));
      fs.writeFileSync(path.join(t, 'bin/busybox'), 'BusyBox v1.35');
      fs.symlinkSync('/bin/busybox', path.join(t, 'sbin/init'));
      fs.symlinkSync('../../../../../etc/passwd', path.join(t, 'sbin/escape'));
      fs.symlinkSync('/etc/shadow', path.join(t, 'sbin/abs'));
      fs.symlinkSync('loop', path.join(t, 'sbin/loop'));
      expect(resolveInTree(t, '/sbin/init')).toBe('/bin/busybox');
      expect(guestInitFlavor(t, '/sbin/init', 'img')).toBe('busybox');
      expect(resolveInTree(t, '/sbin/escape')).toBeUndefined(); // /etc/passwd of the tree: absent
      expect(resolveInTree(t, '/sbin/abs')).toBeUndefined();
      expect(resolveInTree(t, '/sbin/loop')).toBeUndefined();
      expect(() => guestInitFlavor(t, '/sbin/escape', 'img')).toThrow(/has no program at/);
    } finally {
      fs.rmSync(t, { recursive: true, force: true });
    }
  });
});

describe('the main process spec', () => {
  it('checks argv, env, cwd and user', () => {
    expect(validateMain({ argv: ['httpd', '-f'], env: { A: '1' }, cwd: '/srv', user: 'www-data:www-data' }, 'x')).toEqual({
      argv: ['httpd', '-f'],
      env: { A: '1' },
      cwd: '/srv',
      user: 'www-data:www-data',
    });
    expect(() => validateMain({ argv: [] }, 'x')).toThrow(/non-empty/);
    expect(() => validateMain({ argv: ['a\0b'] }, 'x')).toThrow(/argv/);
    expect(() => validateMain({ cwd: 'srv' }, 'x')).toThrow(/absolute/);
    expect(() => validateMain({ user: 'a b' }, 'x')).toThrow(/user/);
    expect(() => validateMain({ env: { 'A=B': 'x' } }, 'x')).toThrow(/env/);
    expect(() => validateLog({ maxBytes: 10, keep: 1 }, 'x')).toThrow(/at least/);
  });

  it('a config keeps its services through a write and a read back; a guest init with a main process is refused', () => {
    const c = newConfig({
      name: 'web',
      xid: 2,
      image: 'base',
      main: { argv: ['httpd', '-f'] },
      restart: { mode: 'on-failure', maxRestarts: 3 },
      log: { maxBytes: 1 << 20, keep: 2 },
      autostart: { order: 5 },
    });
    expect(validateConfig(JSON.parse(JSON.stringify(c)), 'config.json')).toEqual(c);
    expect(() =>
      newConfig({ name: 'x', xid: 2, image: 'base', main: { argv: ['a'] }, init: { kind: 'guest', path: '/sbin/init' } }),
    ).toThrow(/no main process/);
    expect(newConfig({ name: 'x', xid: 2, image: 'base', main: 'none' }).main).toBe('none');
  });

  it('describes a state in one line', () => {
    expect(describeMain({ state: 'running', pid: 7, restarts: 0, at: 't' })).toBe('running (pid 7)');
    expect(describeMain({ state: 'exited', code: 3, restarts: 1, at: 't' })).toBe('exited (code 3) at t, 1 restart');
    expect(describeMain({ state: 'gave-up', code: 7, restarts: 3, at: 't' })).toBe('gave up after exited (code 7), 3 restarts');
    expect(describeMain({ state: 'killed', signal: 9, restarts: 0, at: 't' })).toBe('killed (SIGKILL) at t');
  });
});

describe('--cmd', () => {
  it('splits as a shell would, with quotes and backslashes, and no expansion', () => {
    expect(splitCommand('httpd -f -p 80')).toEqual(['httpd', '-f', '-p', '80']);
    expect(splitCommand(`sh -c 'echo $HOME; exit 3'`)).toEqual(['sh', '-c', 'echo $HOME; exit 3']);
    expect(splitCommand(`echo "a \\"b\\" c" d\\ e ''`)).toEqual(['echo', 'a "b" c', 'd e', '']);
    expect(() => splitCommand(`echo 'open`)).toThrow(/unterminated/);
    expect(() => splitCommand('   ')).toThrow(/empty/);
  });
});
