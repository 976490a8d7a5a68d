// Issue 24's defects a new user hit, through the real CLI: a refused create
// leaks no address claim; non-root and a state root that is no directory get
// one line and the right exit code; `image build` of an existing image is
// refused at once; `list` of a root leaves the global paene-runc root alone;
// `status --all` in natural order; a sane --count maximum.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { PAENE, describeReal, runCli } from '../helpers.js';
import { useRuntime } from '../fixture.js';
import { spawnSync } from 'node:child_process';

describeReal('issue 24: CLI defects', () => {
  const fx = useRuntime('cli24', () => {
    expect(run('create', 'db1').code).toBe(0); // builds the base image once
  });
  const run = (...args: string[]) => runCli(fx.root, args);
  const claims = () =>
    fs.existsSync(path.join(fx.root, 'addrs')) ? fs.readdirSync(path.join(fx.root, 'addrs')).filter((n) => !n.startsWith('.')) : [];

  it('a create refused for a missing or bad image leaves no address claim behind', () => {
    const before = claims();
    for (let i = 0; i < 3; i++) {
      const r = run('create', 'leaky', '--image', 'no-such-image');
      expect(r.code).toBe(3);
      const bad = run('create', 'leaky', '--image', 'Bad/Name');
      expect(bad.code).not.toBe(0);
    }
    expect(claims()).toEqual(before);
    for (const a of claims()) expect(fs.readlinkSync(path.join(fx.root, 'addrs', a))).not.toBe('leaky');
    // the pool goes on from where it was: the next create gets the next address, not one past three leaks
    expect(run('create', 'db2').code).toBe(0);
    expect(claims().length).toBe(before.length + 1);
  });

  it.each([
    ['list'],
    ['status', '--all'],
    ['du'],
    ['ps', '--all'],
    ['stats'],
    ['net', 'ls'],
    ['limit', 'db1', '--cpu', '10%'],
    ['image', 'ls'],
  ])('non-root %j: one line and exit 7, no stack trace and no "no images"', (...args: string[]) => {
    fs.chmodSync(fx.root, 0o700);
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', PAENE, '--root', fx.root, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/permission denied|needs root/);
    expect(r.stdout).not.toMatch(/no images|no contexts/);
    expect(r.status).toBe(7);
  });

  it('a state root that is a file: one line, exit 2', () => {
    const r = spawnSync(PAENE, ['list'], { encoding: 'utf8', env: { ...process.env, PAENE_ROOT: '/etc/passwd' } });
    expect(r.stderr).toBe('paene: the state root /etc/passwd is not a directory (set by --root or $PAENE_ROOT)\n');
    expect(r.status).toBe(2);
  });

  it('image build of an existing image is refused before anything is built, with exit 4', () => {
    // "before anything is built": the store's files are the same ones, untouched, and no progress was shown
    const images = path.join(fx.root, 'images');
    const snapshot = () =>
      (fs.readdirSync(images, { recursive: true }) as string[]).sort().map((f) => {
        const st = fs.lstatSync(path.join(images, f));
        return `${f} ${st.ino} ${st.mtimeMs}`;
      });
    const before = snapshot();
    const r = run('image', 'build');
    expect(r.stderr).toMatch(/image "base" already exists/);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(snapshot()).toEqual(before);
  });

  it("list leaves paene-runc's global root to the default state root; --oci-root names one", () => {
    const oci = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-oci24-'));
    try {
      const plain = run('list', '--json', '--oci');
      expect(plain.code).toBe(0);
      expect(JSON.parse(plain.stdout).oci).toEqual([]);
      const named = run('list', '--json', '--oci', '--oci-root', oci);
      expect(named.code).toBe(0);
      expect(JSON.parse(named.stdout).oci).toEqual([]);
      expect(run('list').stdout).not.toMatch(/OCI containers/);
    } finally {
      fs.rmSync(oci, { recursive: true, force: true });
    }
  });

  it('status --all and list are in natural order', () => {
    for (const n of ['db10', 'db100', 'db11']) expect(run('create', n, '--net', 'none').code).toBe(0);
    const names = (out: string) =>
      out
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0])
        .filter((n) => n);
    expect(names(run('status', '--all').stdout)).toEqual(['db1', 'db2', 'db10', 'db11', 'db100']);
    expect(names(run('list').stdout)).toEqual(['db1', 'db2', 'db10', 'db11', 'db100']);
    expect(names(run('status', 'db*').stdout)).toEqual(['db1', 'db2', 'db10', 'db11', 'db100']);
  });

  it('the --count maximum is the number of xids, not 2^53', () => {
    const r = run('create', 'n%d', '--count', '99999999999999999');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/from 1 to 49150/);
    expect(r.stderr).not.toMatch(/9007199254740991/);
  });
});
