import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPaeneError } from '../../src/model/errors.js';
import { ImageStore, validateImageName } from '../../src/image/store.js';
import { treeUsage } from '../../src/image/walk.js';
import { describeReal, tempRoot } from '../helpers.js';
import { diffSnapshots, makeTar, physicalBytes, prng, snapshot, streamOf, type Ent } from '../image/tarhelp.js';

const asRoot = process.getuid?.() === 0;

async function exportToBuffer(store: ImageStore, name: string): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => out.on('end', r));
  await store.exportTar(name, out);
  await ended;
  return Buffer.concat(chunks);
}

function richEntries(): Ent[] {
  const big = Buffer.alloc(3 * 1024 * 1024);
  const r = prng(7);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((r() * 2 ** 32) >>> 0, i);
  return [
    { name: './', type: 'directory', mode: 0o755 },
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
    { name: 'etc/shadow', body: 'root:*:1::::::\n', mode: 0o640, gid: 42 },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/su', body: 'fake su', mode: 0o4755 },
    { name: 'bin/wall', body: 'fake wall', mode: 0o2755, gid: 5 },
    { name: 'bin/sh', type: 'symlink', linkname: 'dash' },
    { name: 'bin/dash', body: 'fake dash', mode: 0o755 },
    { name: 'bin/dash2', type: 'link', linkname: 'bin/dash' },
    { name: 'abs', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'home/', type: 'directory' },
    { name: 'home/user/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
    { name: 'home/user/file', body: 'mine', uid: 1000, gid: 1000, mode: 0o600 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'ro/', type: 'directory', mode: 0o555 },
    { name: 'ro/inside', body: 'x' },
    { name: 'empty', body: '' },
    { name: 'big', body: big },
    { name: 'fifo', type: 'fifo', mode: 0o644 },
    { name: 'd'.repeat(90) + '/' + 'e'.repeat(90) + '/' + 'long-name-over-100-bytes', body: 'long' },
    { name: 'ünïcødé ☃', body: 'snow' },
    { name: 'lnk-long', type: 'symlink', linkname: 'x/'.repeat(80) + 'target' },
  ];
}

describe('image names', () => {
  it('accepts context-style names and refuses others', () => {
    for (const ok of ['base', 'a', 'debian-12', 'img_1.0', '0']) expect(validateImageName(ok)).toBe(ok);
    for (const bad of ['', 'Base', '-x', '.x', 'a/b', '..', 'a'.repeat(64), 'a b'])
      expect(() => validateImageName(bad)).toThrow(/invalid image name/);
  });
});

describe('image store', () => {
  let root: string;
  let store: ImageStore;
  beforeAll(() => {
    root = tempRoot('image-store');
    store = new ImageStore(path.join(root, 'images'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('imports a tar and lists it', async () => {
    const info = await store.importTar(streamOf(await makeTar(richEntries())), 'rich', { source: 'test' });
    expect(info.name).toBe('rich');
    expect(info.files).toBe(richEntries().length + 1); // + 2 implicit parent dirs - the root
    expect(info.logicalBytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(store.has('rich')).toBe(true);
    expect(store.list().map((i) => i.name)).toEqual(['rich']);
    const r = info.rootfs;
    expect(fs.readFileSync(path.join(r, 'etc/passwd'), 'utf8')).toContain('root:x');
    expect(fs.readlinkSync(path.join(r, 'bin/sh'))).toBe('dash');
    expect(fs.statSync(path.join(r, 'bin/dash')).ino).toBe(fs.statSync(path.join(r, 'bin/dash2')).ino);
    expect(fs.lstatSync(path.join(r, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(fs.lstatSync(path.join(r, 'fifo')).isFIFO()).toBe(true);
    if (asRoot) expect(fs.lstatSync(path.join(r, 'bin/su')).mode & 0o7777).toBe(0o4755);
  });

  it('round trip import → export → import gives the same tree', async () => {
    const tarA = await exportToBuffer(store, 'rich');
    await store.importTar(streamOf(tarA), 'rich2');
    const a = snapshot(store.get('rich').rootfs, { mtimes: true });
    const b = snapshot(store.get('rich2').rootfs, { mtimes: true });
    expect(diffSnapshots(a, b)).toEqual([]);
    expect(a.size).toBe(richEntries().length + 2);
    // and again through gzip
    await store.importTar(streamOf(zlib.gzipSync(await exportToBuffer(store, 'rich2'))), 'rich3');
    expect(diffSnapshots(a, snapshot(store.get('rich3').rootfs, { mtimes: true }))).toEqual([]);
    // identical content+metadata → identical inodes across the three images
    const ino = (n: string) => fs.statSync(path.join(store.get(n).rootfs, 'big')).ino;
    expect(ino('rich2')).toBe(ino('rich'));
    expect(ino('rich3')).toBe(ino('rich'));
  });

  it('does not merge files that differ only in metadata', async () => {
    const t = await makeTar([
      { name: 'a', body: 'same', mode: 0o644 },
      { name: 'b', body: 'same', mode: 0o755 },
      { name: 'c', body: 'same', mode: 0o644, mtime: new Date(1_600_000_000_000) },
      { name: 'd', body: 'same', mode: 0o644 },
    ]);
    const info = await store.importTar(streamOf(t), 'meta');
    const st = (n: string) => fs.statSync(path.join(info.rootfs, n));
    expect(st('a').ino).toBe(st('d').ino);
    expect(st('a').ino).not.toBe(st('b').ino);
    expect(st('a').ino).not.toBe(st('c').ino);
    expect(st('b').mode & 0o777).toBe(0o755);
    expect(Math.floor(st('c').mtimeMs / 1000)).toBe(1_600_000_000);
    store.remove('meta', []);
  });

  it('two images sharing most files take little more disk than one', async () => {
    const r = prng(99);
    const files: Ent[] = [];
    for (let i = 0; i < 40; i++) {
      const b = Buffer.alloc(64 * 1024);
      for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((r() * 2 ** 32) >>> 0, j);
      files.push({ name: `lib/f${i}`, body: b });
    }
    const s2root = tempRoot('image-share');
    try {
      const s2 = new ImageStore(path.join(s2root, 'images'));
      await s2.importTar(streamOf(await makeTar(files)), 'one');
      const one = physicalBytes(s2.dir);
      const changed = files.map((f, i) => (i < 2 ? { ...f, body: randomBytes(64 * 1024) } : f));
      changed.push({ name: 'lib/new', body: randomBytes(64 * 1024) });
      await s2.importTar(streamOf(await makeTar(changed)), 'two');
      const two = physicalBytes(s2.dir);
      const du = s2.du();
      // 3 new 64 KiB files + a few directory blocks
      expect(two - one).toBeLessThan(3 * 64 * 1024 + 32 * 1024);
      expect(two / one).toBeLessThan(1.15);
      expect(du.physicalBytes).toBe(two - fs.lstatSync(s2.dir).blocks * 512 - dirBlocks(s2));
      expect(du.sharingRatio).toBeGreaterThan(1.8);
      expect(du.mostShared[0].images).toEqual(['one', 'two']);
      // each image's amortized share sums to the store's file data
      const sum = s2.list().reduce((a, i) => a + i.diskBytes, 0);
      expect(Math.abs(sum - du.physicalBytes)).toBeLessThan(16 * 1024);
      console.log(`sharing: 1 image ${one} B, 2 images ${two} B on disk (+${(((two - one) / one) * 100).toFixed(1)}%)`);
    } finally {
      fs.rmSync(s2root, { recursive: true, force: true });
    }
  });

  it('refuses to import over an existing image and leaves it alone', async () => {
    const before = snapshot(store.dir);
    await expect(store.importTar(streamOf(await makeTar([{ name: 'x', body: 'y' }])), 'rich')).rejects.toMatchObject({ code: 'exists' });
    expect(diffSnapshots(before, snapshot(store.dir))).toEqual([]);
  });

  it('get of an unknown image lists the known ones', () => {
    try {
      store.get('nope');
      throw new Error('no error');
    } catch (e) {
      expect(isPaeneError(e, 'not-found')).toBe(true);
      expect((e as Error).message).toMatch(/rich, rich2, rich3/);
    }
  });

  it('rm is refused while contexts use the image, then frees unshared objects', async () => {
    expect(() => store.remove('rich3', ['web1', 'web2'])).toThrow(/used by contexts web1, web2/);
    expect(store.has('rich3')).toBe(true);
    const t = await makeTar([{ name: 'only-here', body: randomBytes(100_000) }]);
    await store.importTar(streamOf(t), 'solo');
    const objectsBefore = store.du().objects;
    store.remove('solo', []);
    expect(store.has('solo')).toBe(false);
    expect(store.du().objects).toBe(objectsBefore - 1);
    expect(fs.readdirSync(store.stagingDir)).toEqual([]);
    store.remove('rich3', []);
    expect(store.du().orphanObjects).toBe(0);
    expect(() => store.remove('solo', [])).toThrow(/no image/);
  });

  it('importDirectory makes an image of a directory, sharing unchanged files', async () => {
    const src = path.join(root, 'ctx-merged');
    fs.mkdirSync(src);
    expect(spawnSync('cp', ['-a', store.get('rich').rootfs + '/.', src]).status).toBe(0);
    fs.writeFileSync(path.join(src, 'etc/hostname'), 'committed\n');
    const info = await store.importDirectory(src, 'committed');
    expect(fs.readFileSync(path.join(info.rootfs, 'etc/hostname'), 'utf8')).toBe('committed\n');
    expect(fs.statSync(path.join(info.rootfs, 'big')).ino).toBe(fs.statSync(path.join(store.get('rich').rootfs, 'big')).ino);
    expect(info.source).toBe(`dir:${src}`);
    const u = treeUsage(src);
    expect(u.regularFiles).toBeGreaterThan(10);
  });

  it('waits for the store lock and takes over a stale one', async () => {
    const lock = path.join(store.dir, 'lock');
    fs.writeFileSync(lock, '999999999\n'); // no such pid
    await store.importTar(streamOf(await makeTar([{ name: 'a', body: 'b' }])), 'afterstale');
    expect(fs.existsSync(lock)).toBe(false);
    store.remove('afterstale', []);
  });

  it('clears a crashed import on the next write', async () => {
    const crashed = path.join(store.stagingDir, '999999999-abcd');
    fs.mkdirSync(path.join(crashed, 'rootfs'), { recursive: true });
    const orphan = path.join(store.objectsDir, 'ff', 'ff'.repeat(32) + '.644.0.0.0');
    fs.mkdirSync(path.dirname(orphan), { recursive: true });
    fs.writeFileSync(orphan, 'orphan');
    await store.importTar(streamOf(await makeTar([{ name: 'a', body: 'b' }])), 'aftercrash');
    expect(fs.existsSync(crashed)).toBe(false);
    expect(fs.existsSync(orphan)).toBe(false);
    store.remove('aftercrash', []);
  });

  it('clears the empty fan-out dir of an import killed between its mkdir and its first object there', async () => {
    const before = snapshot(store.dir);
    const crashed = path.join(store.stagingDir, '999999998-abcd');
    fs.mkdirSync(path.join(crashed, 'rootfs'), { recursive: true });
    const fan = path.join(store.objectsDir, 'fe');
    fs.mkdirSync(fan); // no object in it: the import was killed right after the mkdir
    await store.importTar(streamOf(await makeTar([{ name: 'c', body: 'd' }])), 'afterkill');
    store.remove('afterkill', []);
    expect(fs.existsSync(fan)).toBe(false);
    expect(diffSnapshots(before, snapshot(store.dir))).toEqual([]);
  });
});

function dirBlocks(s: ImageStore): number {
  // objects/, its fan-out dirs, trees/ and staging/ are bookkeeping, not image data
  let t = 0;
  for (const d of [s.objectsDir, s.treesDir, s.stagingDir]) t += fs.lstatSync(d).blocks * 512;
  for (const f of fs.readdirSync(s.objectsDir)) t += fs.lstatSync(path.join(s.objectsDir, f)).blocks * 512;
  for (const n of fs.readdirSync(s.treesDir))
    t += fs.lstatSync(path.join(s.treesDir, n)).blocks * 512 + fs.lstatSync(path.join(s.treesDir, n, 'manifest.json')).blocks * 512;
  return t;
}

describeReal('image store as root', () => {
  let root: string;
  beforeAll(() => {
    root = tempRoot('image-owners');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('keeps owners, setuid bits and device nodes (with allowDevices) inside the image', async () => {
    const store = new ImageStore(path.join(root, 'images'));
    const t = await makeTar([
      { name: 'su', body: 'x', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'owned', body: 'x', mode: 0o640, uid: 1234, gid: 5678 },
      { name: 'dir/', type: 'directory', mode: 0o2750, uid: 33, gid: 33 },
      { name: 'sym', type: 'symlink', linkname: 'owned', uid: 7, gid: 8 },
      { name: 'null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    ]);
    const warnings: string[] = [];
    const info = await store.importTar(streamOf(t), 'owners', { allowDevices: true, onWarning: (m) => warnings.push(m) });
    const st = (n: string) => fs.lstatSync(path.join(info.rootfs, n));
    expect(st('su').mode & 0o7777).toBe(0o4755);
    expect([st('owned').uid, st('owned').gid]).toEqual([1234, 5678]);
    expect([st('dir').uid, st('dir').mode & 0o7777]).toEqual([33, 0o2750]);
    expect([st('sym').uid, st('sym').gid]).toEqual([7, 8]);
    expect(st('null').isCharacterDevice()).toBe(true);
    expect(st('null').rdev).toBe(fs.statSync('/dev/null').rdev);
    expect(warnings).toEqual([]);
    // the store's own directories keep host users out of the image's setuid files
    for (const d of [store.dir, store.objectsDir, store.treesDir]) expect(fs.statSync(d).mode & 0o077).toBe(0);
  });

  it('round-trips ids above the ustar limit (user-namespaced images) through PAX', async () => {
    const store = new ImageStore(path.join(root, 'images'));
    const t = await makeTar([{ name: 'a', body: 'x' }]);
    const info = await store.importTar(streamOf(t), 'bigids');
    // Make a tree with big ids by importing a directory we chown.
    const src = path.join(root, 'bigsrc');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'f'), 'big');
    fs.chownSync(path.join(src, 'f'), 100_000_000, 100_000_001);
    fs.symlinkSync('f', path.join(src, 'l'));
    fs.lchownSync(path.join(src, 'l'), 3_000_000, 3_000_001);
    const big = await store.importDirectory(src, 'bigids2');
    expect(fs.lstatSync(path.join(big.rootfs, 'f')).uid).toBe(100_000_000);
    expect(fs.lstatSync(path.join(big.rootfs, 'f')).gid).toBe(100_000_001);
    expect(fs.lstatSync(path.join(big.rootfs, 'l')).uid).toBe(3_000_000);
    expect(info.files).toBe(1);
  });
});
