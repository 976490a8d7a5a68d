// The base image, built from this host's programs (needs root: the tree keeps
// root ownership, and a chroot proves the binaries run inside it).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureBaseImage, libraryClosure, parseRecipe, RECIPE_DIR } from '../../src/image/base.js';
import { ImageStore, type ImageInfo } from '../../src/image/store.js';
import { describeReal, tempRoot } from '../helpers.js';
import { physicalBytes, rawEntry, streamOf } from './tarhelp.js';

describeReal('base image', () => {
  let root: string;
  let store: ImageStore;
  let info: ImageInfo;
  beforeAll(async () => {
    root = tempRoot('image-base');
    store = new ImageStore(path.join(root, 'images'));
    const t0 = Date.now();
    info = await ensureBaseImage(store);
    console.log(`base image: built in ${Date.now() - t0} ms, ${info.files} entries, ${(info.logicalBytes / 1e6).toFixed(1)} MB`);
  }, 120_000);
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const inside = (p: string) => path.join(info.rootfs, p);
  /** Resolve a guest path inside the image root (symlinks are guest-absolute). */
  const resolveIn = (p: string, depth = 0): string => {
    if (depth > 20) throw new Error(`symlink loop at ${p}`);
    const parts = p.split('/').filter(Boolean);
    let cur = '/';
    for (let i = 0; i < parts.length; i++) {
      const next = path.posix.join(cur, parts[i]);
      const st = fs.lstatSync(inside(next), { throwIfNoEntry: false });
      if (st === undefined) throw new Error(`${p}: ${next} missing in the image`);
      if (st.isSymbolicLink()) {
        const t = fs.readlinkSync(inside(next));
        cur = resolveIn(t.startsWith('/') ? t : path.posix.join(cur, t), depth + 1);
      } else cur = next;
    }
    return cur;
  };

  it('has the programs the runtime and benchmarks need, with their libraries', () => {
    for (const p of [
      '/bin/sh',
      '/bin/busybox',
      '/usr/bin/ps',
      '/usr/bin/ipcs',
      '/usr/bin/ipcmk',
      '/usr/bin/ipcrm',
      '/bin/dd',
      '/bin/sleep',
      '/bin/hostname',
      '/usr/bin/id',
      '/bin/cat',
      '/usr/bin/stat',
    ]) {
      const real = resolveIn(p);
      expect(fs.statSync(inside(real)).isFile(), p).toBe(true);
      for (const lib of libraryClosure(fs.realpathSync(p.startsWith('/bin/busybox') ? '/bin/busybox' : p)))
        expect(() => resolveIn(lib), `${p} needs ${lib}`).not.toThrow();
    }
    for (const applet of ['/usr/sbin/httpd', '/sbin/init', '/bin/ash', '/usr/bin/wget', '/usr/bin/nc', '/bin/ping', '/usr/bin/top'])
      expect(resolveIn(applet), applet).toMatch(/busybox$/);
    expect(fs.lstatSync(inside('tmp')).mode & 0o7777).toBe(0o1777);
    expect(fs.lstatSync(inside('var/tmp')).mode & 0o7777).toBe(0o1777);
    expect(fs.lstatSync(inside('root')).mode & 0o7777).toBe(0o700);
    for (const d of ['proc', 'dev', 'sys', 'run', 'etc']) expect(fs.lstatSync(inside(d)).isDirectory(), d).toBe(true);
    expect(fs.readFileSync(inside('etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    // usr-merge symlinks as on the host
    for (const top of ['bin', 'sbin', 'lib', 'lib64']) {
      const host = fs.lstatSync('/' + top, { throwIfNoEntry: false });
      if (host?.isSymbolicLink()) expect(fs.readlinkSync(inside(top))).toBe(fs.readlinkSync('/' + top));
    }
  });

  it("finds each program's libraries as ldd does (the loader the program names, traced)", () => {
    const ldd = (f: string) => {
      const r = spawnSync('ldd', [f], { encoding: 'utf8' });
      if (/not a dynamic executable|statically linked/.test(r.stdout + r.stderr)) return [];
      expect(r.status, r.stderr).toBe(0);
      return [...r.stdout.matchAll(/(?:=>\s*|^\s*)(\/\S+)\s+\(0x/gm)].map((m) => m[1]);
    };
    for (const p of ['/bin/sh', '/usr/bin/ps', '/usr/bin/stat', '/bin/busybox', process.execPath]) {
      const real = fs.realpathSync(p);
      expect(libraryClosure(real), p).toEqual(ldd(real));
    }
  });

  it('runs inside a chroot of it (shell, coreutils, ps, ipcs, busybox)', () => {
    const r = spawnSync(
      'chroot',
      [
        info.rootfs,
        '/bin/sh',
        '-c',
        'id -u && hostname >/dev/null && echo hi | cat && ipcs -m >/dev/null && busybox true && dd if=/dev/zero of=/tmp/x bs=1 count=0 2>/dev/null; echo ok',
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('0\nhi\nok\n');
    // the chroot wrote nothing into the image (its /tmp/x failed: no /dev/zero in the bare image)
    expect(fs.readdirSync(inside('tmp'))).toEqual([]);
  });

  it('ensureBaseImage is idempotent and the recipe parses', async () => {
    const again = await ensureBaseImage(store);
    expect(again.created).toBe(info.created);
    const recipe = parseRecipe(fs.readFileSync(path.join(RECIPE_DIR, 'manifest'), 'utf8'));
    expect(recipe.bins.length).toBeGreaterThan(20);
    expect(recipe.applets).toContain('httpd');
  });

  it('measures import throughput and disk for 1, 2 and 10 images sharing most files', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise((r) => out.on('end', r));
    await store.exportTar('base', out);
    await ended;
    const tarball = Buffer.concat(chunks);

    const s2root = tempRoot('image-base-share');
    try {
      const s2 = new ImageStore(path.join(s2root, 'images'));
      const t0 = process.hrtime.bigint();
      await s2.importTar(streamOf(tarball, 64 * 1024), 'b0');
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const one = physicalBytes(s2.dir);
      // Nine more images: the base plus one private file each (an "app").
      for (let i = 1; i < 10; i++) {
        const cfg = Buffer.from(`app ${i}\n`.repeat(500));
        const extra = rawEntry({ name: `etc/app${i}.conf` }, cfg);
        const variant = Buffer.concat([tarball.subarray(0, tarball.length - 1024), extra, Buffer.alloc(1024)]);
        await s2.importTar(streamOf(variant, 64 * 1024), `b${i}`);
        if (i === 1) {
          const two = physicalBytes(s2.dir);
          console.log(
            `images: 1 → ${(one / 1e6).toFixed(2)} MB on disk, 2 → ${(two / 1e6).toFixed(2)} MB (+${(((two - one) / one) * 100).toFixed(1)}%)`,
          );
          expect(two / one).toBeLessThan(1.1);
        }
      }
      const ten = physicalBytes(s2.dir);
      const du = s2.du();
      console.log(
        `import throughput: ${(tarball.length / 1e6 / secs).toFixed(1)} MB/s (${(tarball.length / 1e6).toFixed(1)} MB tar in ${(secs * 1000).toFixed(0)} ms); ` +
          `10 images → ${(ten / 1e6).toFixed(2)} MB on disk vs ${(du.logicalBytes / 1e6).toFixed(1)} MB logical (ratio ${du.sharingRatio.toFixed(2)})`,
      );
      expect(ten / one).toBeLessThan(1.5);
      expect(du.sharingRatio).toBeGreaterThan(9);
    } finally {
      fs.rmSync(s2root, { recursive: true, force: true });
    }
  }, 120_000);
});
