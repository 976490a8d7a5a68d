// `paene cp` (issue 24): both ways, rename and into-directory semantics, and
// a hostile guest: symlinked destinations, symlinks swapped during a copy,
// `..` names, device files, and a guest whose tar sends a crafted stream.
// Nothing may be read or written outside the context's root or outside DST.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal, runCli } from '../helpers.js';
import { useHostDir, useRuntime } from '../fixture.js';
import { type Ent, makeTar } from '../image/tarhelp.js';

describeReal('issue 24: paene cp', () => {
  const fx = useRuntime('cp24', () => {
    expect(run('create', 'c', '--net', 'none').code).toBe(0);
    expect(run('start', 'c').code).toBe(0);
  });
  const hd = useHostDir('cp24-host');
  const run = (...args: string[]) => runCli(fx.root, args);
  const sh = (script: string, input?: string | Buffer) =>
    runCli(fx.root, ['exec', 'c', '--', 'sh', '-c', script], input === undefined ? {} : { input });
  /** Every path under a host directory (to prove nothing else appeared). */
  const tree = (d: string, rel = ''): string[] => {
    const here = path.join(d, rel);
    if (!fs.lstatSync(here, { throwIfNoEntry: false })?.isDirectory()) return [];
    return fs
      .readdirSync(here)
      .flatMap((n) => {
        const r = rel ? `${rel}/${n}` : n;
        return [r, ...tree(d, r)];
      })
      .sort();
  };

  it('copies a tree in and back out: files, subdirectories, symlinks as symlinks, modes', () => {
    const src = path.join(hd.dir, 'site');
    fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(src, 'index.html'), 'hello\n');
    fs.writeFileSync(path.join(src, 'sub/run.sh'), '#!/bin/sh\n', { mode: 0o750 });
    fs.symlinkSync('/etc/passwd', path.join(src, 'abs-link'));
    expect(run('cp', src, 'c:/srv').code).toBe(0); // /srv does not exist: src becomes /srv
    expect(sh('cat /srv/index.html; stat -c %a /srv/sub/run.sh; readlink /srv/abs-link').stdout).toBe('hello\n750\n/etc/passwd\n');
    expect(run('cp', src, 'c:/srv').code).toBe(0); // now it exists: src goes into it
    expect(sh('cat /srv/site/index.html').stdout).toBe('hello\n');
    const out = path.join(hd.dir, 'out1');
    fs.mkdirSync(out);
    const r = run('cp', 'c:/srv', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^copied c:\/srv to .* \(\d+ entries, /);
    expect(fs.readFileSync(path.join(out, 'srv/index.html'), 'utf8')).toBe('hello\n');
    expect(fs.statSync(path.join(out, 'srv/sub/run.sh')).mode & 0o777).toBe(0o750);
    expect(fs.readlinkSync(path.join(out, 'srv/abs-link'))).toBe('/etc/passwd');
    expect(run('cp', 'c:/srv/index.html', path.join(out, 'renamed.html')).code).toBe(0);
    expect(fs.readFileSync(path.join(out, 'renamed.html'), 'utf8')).toBe('hello\n');
    expect(run('cp', 'c:/no/such', out).code).toBe(3);
    expect(run('cp', path.join(hd.dir, 'nothing-here'), 'c:/').code).toBe(3);
    expect(run('cp', 'c:/etc/hostname', path.join(hd.dir, 'no-dir/x')).code).toBe(3);
  });

  it('a guest symlink as the destination resolves inside the guest, never on the host', () => {
    const canary = path.join(hd.dir, 'canary');
    fs.mkdirSync(canary);
    fs.writeFileSync(path.join(hd.dir, 'payload'), 'payload\n');
    // the guest points its paths at the host's canary directory and at its own root by '..'
    expect(sh(`mkdir -p ${canary} && rmdir ${canary} && ln -s ${canary} /to-host && ln -s ../../../../../.. /up`).code).toBe(0);
    run('cp', path.join(hd.dir, 'payload'), 'c:/to-host/');
    run('cp', path.join(hd.dir, 'payload'), 'c:/up/');
    run('cp', path.join(hd.dir, 'payload'), `c:/../../../../..${canary}/p2`);
    expect(tree(canary)).toEqual([]);
    expect(sh('cat /payload').stdout).toBe('payload\n'); // /up/ is the guest's own root
    // reading: a guest symlink to a host path reads the guest's, not the host's
    fs.writeFileSync(path.join(canary, 'secret'), 'host secret\n');
    expect(sh(`mkdir -p ${canary} && echo guest > ${canary}/secret && ln -s ${canary}/secret /secret-link`).code).toBe(0);
    const out = path.join(hd.dir, 'out2');
    fs.mkdirSync(out);
    expect(run('cp', 'c:/secret-link/', out).code).toBe(0);
    expect(fs.readlinkSync(path.join(out, 'secret-link'))).toBe(`${canary}/secret`); // a symlink, copied as one
    expect(run('cp', `c:${canary}/secret`, path.join(out, 's')).code).toBe(0);
    expect(fs.readFileSync(path.join(out, 's'), 'utf8')).toBe('guest\n');
    expect(tree(canary)).toEqual(['secret']);
    expect(fs.readFileSync(path.join(canary, 'secret'), 'utf8')).toBe('host secret\n');
  });

  it("a host destination's own symlinks are not written through", () => {
    const victim = path.join(hd.dir, 'victim');
    fs.mkdirSync(victim);
    const out = path.join(hd.dir, 'out3');
    fs.mkdirSync(out);
    fs.symlinkSync(victim, path.join(out, 'srv'));
    const r = run('cp', 'c:/srv', out);
    expect(r.code).not.toBe(0);
    expect(tree(victim)).toEqual([]);
  });

  it('device files are not made on the host; set-id bits are dropped', () => {
    const out = path.join(hd.dir, 'out4');
    fs.mkdirSync(out);
    const r = run('cp', 'c:/dev/null', out);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/character-device skipped/);
    expect(fs.existsSync(path.join(out, 'null'))).toBe(false);
    expect(sh('cp /bin/busybox /suid && chmod 4755 /suid').code).toBe(0);
    expect(run('cp', 'c:/suid', out).code).toBe(0);
    expect(fs.statSync(path.join(out, 'suid')).mode & 0o7777).toBe(0o755);
  });

  it.each<[string, Ent[], RegExp]>([
    [
      'a .. name',
      [
        { name: 'x/', type: 'directory' },
        { name: 'x/../../escape', body: 'e' },
      ],
      /'\.\.' names are refused/,
    ],
    ['an absolute name', [{ name: '/abs-escape', body: 'e' }], /absolute or '\.\.' names/],
    [
      'a name outside SRC',
      [
        { name: 'x/', type: 'directory' },
        { name: 'other/escape', body: 'e' },
      ],
      /not under x/,
    ],
    [
      'a file through its own symlink',
      [
        { name: 'x/', type: 'directory' },
        { name: 'x/link', type: 'symlink', linkname: 'VICTIM' },
        { name: 'x/link/pwned', body: 'e' },
      ],
      /a symlink: nothing is written through it/,
    ],
    [
      'a hard link to a host file',
      [
        { name: 'x/', type: 'directory' },
        { name: 'x/h', type: 'link', linkname: 'x/../../../etc/passwd' },
      ],
      /refused|not a file of this copy/,
    ],
    [
      'a hard link outside the copy',
      [
        { name: 'x/', type: 'directory' },
        { name: 'x/h', type: 'link', linkname: 'x/nothing' },
      ],
      /not a file of this copy/,
    ],
  ])('a guest tar that sends %s: refused, nothing outside DST', async (_what, ents, message) => {
    const victim = path.join(hd.dir, `victim-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(victim);
    const evil = await makeTar(ents.map((e) => ({ ...e, ...(e.linkname === 'VICTIM' ? { linkname: victim } : {}) })));
    expect(
      sh(
        'mkdir -p /usr/local/bin /x && cat > /evil.tar && printf "#!/bin/sh\\ncat /evil.tar\\n" > /usr/local/bin/tar && chmod 755 /usr/local/bin/tar',
        evil,
      ).code,
    ).toBe(0);
    try {
      const out = path.join(hd.dir, `out-${Math.random().toString(36).slice(2)}`);
      fs.mkdirSync(out);
      const before = tree(hd.dir).filter((p) => !p.startsWith(path.basename(out)));
      const r = run('cp', 'c:/x', path.join(out, 'dst'));
      expect(r.stderr).toMatch(message);
      expect(r.code).toBe(9);
      expect(tree(victim)).toEqual([]);
      expect(tree(hd.dir).filter((p) => !p.startsWith(path.basename(out)))).toEqual(before);
      expect(fs.existsSync('/abs-escape')).toBe(false);
    } finally {
      sh('rm -f /usr/local/bin/tar /evil.tar');
    }
  });

  it('a guest tar that floods its stderr, or cuts its stream short: no hang; a cut stream refused', async () => {
    const good = await makeTar([
      { name: 'x/', type: 'directory' },
      { name: 'x/f', body: 'f'.repeat(5000) },
    ]);
    const fake = (body: string) =>
      sh(
        `mkdir -p /usr/local/bin && cat > /good.tar && printf '#!/bin/sh\\n${body}\\n' > /usr/local/bin/tar && chmod 755 /usr/local/bin/tar`,
        good,
      );
    try {
      // 4 MiB on stderr before the tar: the copy reads its stdout while the stderr pipe is full (the excess is lost)
      expect(fake('head -c 4194304 /dev/zero | tr "\\\\000" e >&2; cat /good.tar').code).toBe(0);
      const out = path.join(hd.dir, 'flood');
      fs.mkdirSync(out);
      const r = run('cp', 'c:/x', out);
      expect(r.code).toBe(0);
      expect(fs.readFileSync(path.join(out, 'x/f'), 'utf8')).toBe('f'.repeat(5000));
      // the stream ends inside x/f's data
      expect(fake('head -c 2000 /good.tar').code).toBe(0);
      const cut = path.join(hd.dir, 'cut');
      fs.mkdirSync(cut);
      const c = run('cp', 'c:/x', cut);
      expect(c.stderr).toMatch(/ended inside a member/);
      expect(c.code).toBe(9);
      expect(tree(cut).every((p) => p === 'x' || p.startsWith('x/'))).toBe(true);
    } finally {
      sh('rm -f /usr/local/bin/tar /good.tar');
    }
  });

  it('symlinks swapped during copies in and out never reach the host', () => {
    const canary = path.join(hd.dir, 'canary-swap');
    fs.mkdirSync(canary);
    fs.writeFileSync(path.join(canary, 'keep'), 'host\n');
    const before = fs.readFileSync(path.join(canary, 'keep'), 'utf8');
    // the guest flips /swap/d between a directory of its own and symlinks to the host's canary path and to its /etc
    expect(sh(`mkdir -p /swap/real && echo guest > /swap/real/f && mkdir -p ${canary} && echo guest-canary > ${canary}/keep`).code).toBe(0);
    const flip = run(
      'exec',
      '-d',
      'c',
      '--',
      'sh',
      '-c',
      `while :; do rm -rf /swap/d; ln -s ${canary} /swap/d; rm -f /swap/d; ln -s /etc /swap/d; rm -f /swap/d; mkdir -p /swap/d; cp /swap/real/f /swap/d/f; done`,
    );
    expect(flip.code).toBe(0);
    const pid = Number(/host pid (\d+)/.exec(flip.stdout)?.[1]);
    try {
      fs.writeFileSync(path.join(hd.dir, 'swapin'), 'in\n');
      for (let i = 0; i < 8; i++) {
        run('cp', path.join(hd.dir, 'swapin'), 'c:/swap/d/');
        const out = path.join(hd.dir, `swap-out-${i}`);
        fs.mkdirSync(out);
        run('cp', 'c:/swap/d', out);
        for (const p of tree(out)) expect(p === 'd' || p.startsWith('d/')).toBe(true);
      }
    } finally {
      if (pid > 0) spawnSync('kill', ['-9', String(pid)]);
    }
    expect(tree(canary)).toEqual(['keep']);
    expect(fs.readFileSync(path.join(canary, 'keep'), 'utf8')).toBe(before);
  }, 120_000);

  it('context to context and host to host are refused with a hint', () => {
    expect(run('cp', 'c:/etc/hostname', 'c:/tmp/x').stderr).toMatch(/through the host/);
    expect(run('cp', '/etc/hostname', path.join(hd.dir, 'h')).code).toBe(2);
  });
});
