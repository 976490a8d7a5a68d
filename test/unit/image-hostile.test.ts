// Every hostile archive from issue 5: each must fail with a clear error naming
// the entry (or import safely), and nothing outside the image may change —
// checked by snapshotting the whole test root (a sentinel dir and the store).

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPaeneError } from '../../src/model/errors.js';
import { ImageStore } from '../../src/image/store.js';
import { tempRoot } from '../helpers.js';
import { diffSnapshots, makeTar, paxRecord, rawEntry, rawHeader, rawTar, snapshot, streamOf } from '../image/tarhelp.js';

let root: string;
let sentinel: string;
let store: ImageStore;
let n = 0;

beforeAll(async () => {
  root = tempRoot('image-hostile');
  sentinel = path.join(root, 'sentinel');
  fs.mkdirSync(sentinel);
  fs.writeFileSync(path.join(sentinel, 'secret'), 'do not touch\n');
  store = new ImageStore(path.join(root, 'images'));
  // A published image, so the store's objects and trees are part of the snapshot.
  await store.importTar(streamOf(await makeTar([{ name: 'etc/passwd', body: 'seed\n' }])), 'seed');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// The sentinel with mtimes; the store by content (its bookkeeping dirs' mtimes change with the lock).
const whole = () =>
  new Map([
    ...snapshot(root),
    ...[...snapshot(sentinel, { mtimes: true })].map(([k, v]) => [`sentinel-mtime:${k}`, v] as [string, string]),
  ]);

/** Import must fail with `code` and a message matching `msg`; the test root must be unchanged. */
async function refused(tarball: Buffer, code: string, msg: RegExp, opts: Parameters<ImageStore['importTar']>[2] = {}): Promise<void> {
  const before = whole();
  const name = `h${n++}`;
  let err: unknown;
  try {
    await store.importTar(streamOf(tarball), name, opts);
  } catch (e) {
    err = e;
  }
  expect(err, 'import should have failed').toBeDefined();
  expect(isPaeneError(err), String(err)).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  expect((err as Error).message).toMatch(msg);
  expect(store.has(name)).toBe(false);
  expect(diffSnapshots(before, whole())).toEqual([]);
  expect(fs.readdirSync(store.stagingDir)).toEqual([]);
}

/** Import must succeed; nothing outside the new image's tree may change. Returns its rootfs. */
async function accepted(tarball: Buffer, opts: Parameters<ImageStore['importTar']>[2] = {}): Promise<string> {
  const skipNew = (rel: string) => rel.startsWith('images/trees/') || rel.startsWith('images/objects');
  const before = snapshot(root, { skip: skipNew });
  const sentinelBefore = snapshot(sentinel, { mtimes: true });
  const info = await store.importTar(streamOf(tarball), `ok${n++}`, opts);
  expect(diffSnapshots(before, snapshot(root, { skip: skipNew }))).toEqual([]);
  expect(diffSnapshots(sentinelBefore, snapshot(sentinel, { mtimes: true }))).toEqual([]);
  return info.rootfs;
}

describe('hostile archives: names', () => {
  it("refuses '..' components", async () => {
    await refused(await makeTar([{ name: '../escape', body: 'x' }]), 'hostile-archive', /entry "\.\.\/escape": '\.\.' component/);
    await refused(await makeTar([{ name: 'a/../../sentinel/secret', body: 'x' }]), 'hostile-archive', /'\.\.' component/);
    await refused(rawTar(rawEntry({ name: '..', typeflag: '5' })), 'hostile-archive', /'\.\.'/);
  });

  it('refuses absolute paths', async () => {
    await refused(rawTar(rawEntry({ name: `${sentinel}/secret` }, 'pwned')), 'hostile-archive', /absolute path/);
    await refused(rawTar(rawEntry({ name: '/', typeflag: '5' })), 'hostile-archive', /absolute path/);
  });

  it('refuses NUL bytes in names (PAX path)', async () => {
    const pax = paxRecord('path', Buffer.from('ok\0/../../evil'));
    await refused(
      rawTar(rawEntry({ name: 'PaxHeaders/x', typeflag: 'x' }, pax), rawEntry({ name: 'x' }, 'data')),
      'hostile-archive',
      /NUL byte/,
    );
  });

  it('refuses names over the filesystem limits', async () => {
    const longComp = 'a'.repeat(256);
    const pax = paxRecord('path', `dir/${longComp}`);
    await refused(
      rawTar(rawEntry({ name: 'p', typeflag: 'x' }, pax), rawEntry({ name: 'x' }, 'd')),
      'hostile-archive',
      /longer than 255 bytes/,
    );
    const deep = Array.from({ length: 50 }, () => 'b'.repeat(100)).join('/');
    await refused(
      rawTar(rawEntry({ name: 'p', typeflag: 'x' }, paxRecord('path', deep)), rawEntry({ name: 'x' }, 'd')),
      'hostile-archive',
      /longer than 4095 bytes/,
    );
  });

  it('accepts PAX and GNU long names and long link names', async () => {
    const longName = 'x'.repeat(120) + '/' + 'y'.repeat(150);
    const longTarget = '../'.repeat(2) + 'z'.repeat(200);
    const t = rawTar(
      rawEntry({ name: '././@LongLink', typeflag: 'L', gnu: true }, longName + '\0'),
      rawEntry({ name: 'truncated', gnu: true }, 'gnu long'),
      rawEntry({ name: '././@LongLink', typeflag: 'K', gnu: true }, longTarget + '\0'),
      rawEntry({ name: 'gnulink', typeflag: '2', gnu: true }),
      rawEntry({ name: 'p', typeflag: 'x' }, paxRecord('path', 'pax/' + 'q'.repeat(200))),
      rawEntry({ name: 'trunc2' }, 'pax long'),
    );
    const r = await accepted(t);
    expect(fs.readFileSync(path.join(r, longName), 'utf8')).toBe('gnu long');
    expect(fs.readlinkSync(path.join(r, 'gnulink'))).toBe(longTarget);
    expect(fs.readFileSync(path.join(r, 'pax', 'q'.repeat(200)), 'utf8')).toBe('pax long');
  });
});

describe('hostile archives: symlinks and hard links', () => {
  it('never writes through a symlink to a directory outside', async () => {
    const t = await makeTar([
      { name: 'link', type: 'symlink', linkname: sentinel },
      { name: 'link/secret', body: 'pwned' },
    ]);
    await refused(t, 'hostile-archive', /entry "link\/secret": parent "link" is a symlink/);
  });

  it('never writes through a relative symlink climbing out', async () => {
    const t = await makeTar([
      { name: 'up', type: 'symlink', linkname: '../../../../../../../../' + sentinel.slice(1) },
      { name: 'up/new-file', body: 'pwned' },
    ]);
    await refused(t, 'hostile-archive', /parent "up" is a symlink/);
  });

  it('never creates a directory through a symlink', async () => {
    const t = await makeTar([
      { name: 'd', type: 'symlink', linkname: sentinel },
      { name: 'd/sub/', type: 'directory' },
    ]);
    await refused(t, 'hostile-archive', /parent "d" is a symlink/);
  });

  it('a file entry replacing a symlink replaces the link, not its target', async () => {
    const t = await makeTar([
      { name: 'secret', type: 'symlink', linkname: path.join(sentinel, 'secret') },
      { name: 'secret', body: 'replaced' },
    ]);
    const r = await accepted(t);
    expect(fs.lstatSync(path.join(r, 'secret')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(sentinel, 'secret'), 'utf8')).toBe('do not touch\n');
  });

  it('a directory replaced by a symlink is not written through afterwards', async () => {
    const t = await makeTar([
      { name: 'd/', type: 'directory' },
      { name: 'd/x', body: 'inside' },
      { name: 'd', type: 'symlink', linkname: sentinel },
      { name: 'd/y', body: 'pwned' },
    ]);
    await refused(t, 'hostile-archive', /entry "d\/y": parent "d" is a symlink/);
  });

  it('a directory entry over a symlink replaces the symlink', async () => {
    const t = await makeTar([
      { name: 'd', type: 'symlink', linkname: sentinel },
      { name: 'd/', type: 'directory', mode: 0o750 },
      { name: 'd/secret', body: 'image file' },
    ]);
    const r = await accepted(t);
    expect(fs.lstatSync(path.join(r, 'd')).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(r, 'd/secret'), 'utf8')).toBe('image file');
  });

  it('refuses hard links to targets outside the archive', async () => {
    await refused(
      await makeTar([{ name: 'h', type: 'link', linkname: path.join(sentinel, 'secret') }]),
      'hostile-archive',
      /entry "h": hard link target .*absolute path/,
    );
    await refused(await makeTar([{ name: 'h', type: 'link', linkname: '../sentinel/secret' }]), 'hostile-archive', /'\.\.' component/);
  });

  it('refuses hard links to entries not yet seen', async () => {
    const t = await makeTar([
      { name: 'early', type: 'link', linkname: 'later' },
      { name: 'later', body: 'x' },
    ]);
    await refused(t, 'hostile-archive', /entry "early": hard link to "later", which is not an earlier entry/);
  });

  it('refuses a hard link through a symlinked parent', async () => {
    const t = await makeTar([
      { name: 's', type: 'symlink', linkname: sentinel },
      { name: 'h', type: 'link', linkname: 's/secret' },
    ]);
    await refused(t, 'hostile-archive', /not an earlier entry/);
  });

  it('a hard link to a symlink links the symlink itself', async () => {
    const t = await makeTar([
      { name: 's', type: 'symlink', linkname: path.join(sentinel, 'secret') },
      { name: 'h', type: 'link', linkname: 's' },
    ]);
    const r = await accepted(t);
    expect(fs.lstatSync(path.join(r, 'h')).isSymbolicLink()).toBe(true);
  });

  it('refuses a regular file used as a directory', async () => {
    await refused(
      await makeTar([
        { name: 'f', body: 'x' },
        { name: 'f/x', body: 'y' },
      ]),
      'hostile-archive',
      /parent "f" is not a directory/,
    );
  });
});

describe('hostile archives: special files and sizes', () => {
  it('skips device nodes with a warning unless allowed', async () => {
    const warnings: string[] = [];
    const t = await makeTar([
      { name: 'dev/', type: 'directory' },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      { name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o640 },
      { name: 'ok', body: 'fine' },
    ]);
    const r = await accepted(t, { onWarning: (m) => warnings.push(m) });
    expect(fs.existsSync(path.join(r, 'dev/sda'))).toBe(false);
    expect(fs.existsSync(path.join(r, 'dev/mem'))).toBe(false);
    expect(warnings.join('\n')).toMatch(/skipped device node "dev\/sda"/);
    expect(warnings.join('\n')).toMatch(/skipped device node "dev\/mem"/);
  });

  it('refuses huge declared sizes before reading any data', async () => {
    const huge = Buffer.alloc(12);
    huge[0] = 0x80;
    huge.writeUIntBE(100 * 1024 ** 3, 6, 6); // 100 GiB, base-256
    const t = Buffer.concat([rawHeader({ name: 'huge', sizeField: huge }), Buffer.alloc(4096)]);
    await refused(t, 'limit-exceeded', /entry "huge": the archive holds more than \d+ bytes/);
  });

  it('refuses a declared size the data does not have (truncated)', async () => {
    const t = Buffer.concat([rawHeader({ name: 'short', size: 1_000_000 }), Buffer.alloc(10_000, 1)]);
    await refused(t, 'hostile-archive', /corrupt or truncated archive after entry "short"/);
  });

  it('refuses a truncated archive and cleans the objects it had added', async () => {
    const good = await makeTar([
      { name: 'a', body: Buffer.alloc(50_000, 7) },
      { name: 'b', body: Buffer.alloc(50_000, 8) },
      { name: 'c', body: Buffer.alloc(50_000, 9) },
    ]);
    await refused(good.subarray(0, 512 * 150), 'hostile-archive', /truncated/);
  });

  it('an archive ending right after a data-less entry (no end blocks) imports it completely', async () => {
    const t = Buffer.concat([rawEntry({ name: 'a' }, 'x'), rawHeader({ name: 'last', typeflag: '2', linkname: 'a' })]);
    const r = await accepted(t);
    expect(fs.readlinkSync(path.join(r, 'last'))).toBe('a');
  });

  it('refuses a corrupt header checksum', async () => {
    const t = Buffer.from(
      await makeTar([
        { name: 'a', body: 'x' },
        { name: 'b', body: 'y' },
      ]),
    );
    t[1024 + 5] ^= 0xff; // second header's name
    await refused(t, 'hostile-archive', /corrupt or truncated archive after entry "a".*Invalid tar header/);
  });

  it('refuses garbage and unknown compression with a clear message', async () => {
    await refused(
      Buffer.from('hello, this is not a tar at all'.repeat(40)),
      'hostile-archive',
      /corrupt or truncated archive at its first header/,
    );
    await refused(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]), 'invalid-argument', /xz-compressed/);
    await refused(Buffer.alloc(0), 'hostile-archive', /empty/);
    await refused(Buffer.alloc(1024), 'hostile-archive', /no entries/);
  });

  it('refuses corrupt gzip', async () => {
    const gz = zlib.gzipSync(await makeTar([{ name: 'a', body: Buffer.alloc(100_000, 3) }]));
    await refused(gz.subarray(0, gz.length - 20), 'hostile-archive', /corrupt or truncated/);
    const bad = Buffer.from(gz);
    bad[30] ^= 0x55;
    await refused(bad, 'hostile-archive', /corrupt or truncated/);
  });

  it('refuses sparse files', async () => {
    await refused(
      rawTar(rawEntry({ name: 'sparse', typeflag: 'S', gnu: true }, 'abc')),
      'hostile-archive',
      /entry "sparse": unsupported entry type/,
    );
    const pax = paxRecord('GNU.sparse.major', '1');
    await refused(
      rawTar(rawEntry({ name: 'p', typeflag: 'x' }, pax), rawEntry({ name: 'sp' }, 'x')),
      'hostile-archive',
      /sparse files are not supported/,
    );
  });

  it('refuses invalid numeric fields', async () => {
    const h = rawHeader({ name: 'bad-uid', size: 1 });
    h.write('zzzzzzz\0', 108, 'latin1');
    h.fill(' ', 148, 156);
    let sum = 0;
    for (const x of h) sum += x;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
    await refused(rawTar(h, Buffer.alloc(512, 0x41)), 'hostile-archive', /entry "bad-uid": invalid uid field/);
  });
});

describe('hostile archives: duplicates and bombs', () => {
  it('duplicate entries: the last one wins', async () => {
    const t = await makeTar([
      { name: 'f', body: 'first' },
      { name: 'f', body: 'second' },
      { name: 'd/', type: 'directory', mode: 0o700 },
      { name: 'd/child', body: 'c' },
      { name: 'd/', type: 'directory', mode: 0o755 },
      { name: 'x/', type: 'directory' },
      { name: 'x/inner', body: 'gone' },
      { name: 'x', body: 'now a file' },
      { name: 'l', type: 'symlink', linkname: 'f' },
      { name: 'l', type: 'symlink', linkname: 'd' },
    ]);
    const r = await accepted(t);
    expect(fs.readFileSync(path.join(r, 'f'), 'utf8')).toBe('second');
    expect(fs.lstatSync(path.join(r, 'd')).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(path.join(r, 'd/child'), 'utf8')).toBe('c');
    expect(fs.readFileSync(path.join(r, 'x'), 'utf8')).toBe('now a file');
    expect(fs.readlinkSync(path.join(r, 'l'))).toBe('d');
  });

  it('a tar bomb of many tiny files stops at --max-files', async () => {
    const entries = Array.from({ length: 300 }, (_, i) => ({ name: `bomb/f${i}`, body: '' }));
    await refused(await makeTar(entries), 'limit-exceeded', /entry "bomb\/f100": the archive has more than 100 entries/, { maxFiles: 100 });
  });

  it('stops at --max-bytes', async () => {
    const entries = Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, body: Buffer.alloc(1000, i) }));
    await refused(await makeTar(entries), 'limit-exceeded', /entry "f5": the archive holds more than 5500 bytes/, { maxBytes: 5500 });
  });
});
