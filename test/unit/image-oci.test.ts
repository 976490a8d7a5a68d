// Layered image archives (OCI layout tar and directory, docker-archive) into
// the store: the tree is checked file by file against the OCI merge model
// (image/ociplan.ts mergeLayers); hostile layers, digest mismatches and an
// interrupted import leave the store as it was.

import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPaeneError } from '../../src/model/errors.js';
import { type MergedEntry, type ModelEntry, mergeLayers } from '../../src/image/ociplan.js';
import { ImageStore } from '../../src/image/store.js';
import { tempRoot } from '../helpers.js';
import { type TestImage, type TestLayer, dockerTar, ociDir, ociTar } from '../image/ocihelp.js';
import { type Ent, diffSnapshots, snapshot, streamOf } from '../image/tarhelp.js';

/** One layer described once: as tar entries for the archive and as model entries for the expectation. */
function layer(entries: ModelEntry[], compression: TestLayer['compression'] = 'none'): { tl: TestLayer; model: ModelEntry[] } {
  const ents: Ent[] = entries.map((e) => {
    if (e.type === 'dir') return { name: e.path + '/', type: 'directory', mode: e.mode ?? 0o755 };
    if (e.type === 'symlink') return { name: e.path, type: 'symlink', linkname: e.target };
    if (e.type === 'link') return { name: e.path, type: 'link', linkname: e.target };
    if (e.type === 'fifo') return { name: e.path, type: 'fifo' };
    return { name: e.path, body: e.body ?? '', mode: e.mode ?? 0o644 };
  });
  return { tl: { entries: ents, compression }, model: entries };
}

const f = (p: string, body: string, mode?: number): ModelEntry => ({
  path: p,
  type: 'file',
  body,
  ...(mode !== undefined ? { mode } : {}),
});
const d = (p: string): ModelEntry => ({ path: p, type: 'dir' });
const wh = (p: string): ModelEntry => {
  const i = p.lastIndexOf('/');
  return { path: i < 0 ? `.wh.${p}` : `${p.slice(0, i)}/.wh.${p.slice(i + 1)}`, type: 'file', body: '' };
};
const opq = (dir: string): ModelEntry => ({ path: dir === '' ? '.wh..wh..opq' : `${dir}/.wh..wh..opq`, type: 'file', body: '' });

/** The layers every format test imports: each OCI rule at least once, across compressions. */
function stack(): Array<{ tl: TestLayer; model: ModelEntry[] }> {
  return [
    layer(
      [
        d('etc'),
        f('etc/os-release', 'base\n'),
        f('etc/hosts', '127.0.0.1 localhost\n'),
        d('usr'),
        d('usr/bin'),
        f('usr/bin/tool', 'tool v1', 0o755),
        { path: 'usr/bin/tool-alias', type: 'link', target: 'usr/bin/tool' },
        d('var'),
        d('var/cache'),
        f('var/cache/a', 'cache a'),
        d('var/cache/sub'),
        f('var/cache/sub/b', 'cache b'),
        d('opt'),
        f('opt/keep', 'kept'),
        { path: 'bin', type: 'symlink', target: 'usr/bin' },
        f('gone-later', 'x'),
        d('dir-to-file'),
        f('dir-to-file/inner', 'inner'),
        d('srv'),
        d('srv/sub'),
        f('srv/sub/lower', 'hidden by the opaque srv'),
        f('srv/top-lower', 'hidden by the opaque srv'),
        d('keepdir'),
        d('whfirst'),
        f('whfirst/old', 'hidden'),
        f('keepdir/old', 'hidden: the whiteout of keepdir hides the lower names in it'),
      ],
      'gzip',
    ),
    layer(
      [
        f('etc/os-release', 'layer2\n'), // later layer wins
        wh('etc/hosts'), // deleted
        wh('gone-later'),
        d('var/cache'),
        opq('var/cache'), // lower contents hidden
        f('var/cache/new', 'fresh'), // this layer's own survives the marker
        { path: 'opt/tool-link2', type: 'link', target: 'usr/bin/tool' }, // hard link across layers
        f('dir-to-file', 'now a file'),
        f('usr/bin/tool2', 'tool2', 0o755),
        f('same-in-two', 'identical content'),
        f('srv/sub/mine', 'this layer, under a lower dir'), // no dir entries: srv/sub is this layer's too
        opq('srv'),
        f('keepdir/new', 'new'),
        wh('keepdir'), // the same layer has keepdir/new: that stays
        wh('whfirst'), // whiteout before the same layer's file under it: same result
        f('whfirst/new', 'new'),
      ],
      'zstd',
    ),
    layer([
      f('etc/hosts', 'back again\n'), // a whiteout in layer 2 does not stop layer 3
      wh('usr/bin/tool2'),
      f('layer3', 'top'),
      d('opt/newdir'),
      f('opt/newdir/x', 'x'),
      f('copy/same-in-two', 'identical content'),
      f('layer3-only', 'here'),
      wh('layer3-only'), // a whiteout does not hide its own layer's file
    ]),
  ];
}

/** The image tree as the model's shape: type, file content, symlink target (and mode where the model has one). */
function treeOf(root: string, model: Map<string, MergedEntry>): Map<string, MergedEntry> {
  const out = new Map<string, MergedEntry>();
  const visit = (rel: string): void => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const m = model.get(rel);
    if (st.isDirectory()) {
      out.set(rel, { type: 'dir' });
      for (const n of fs.readdirSync(abs)) visit(rel === '' ? n : `${rel}/${n}`);
    } else if (st.isSymbolicLink()) out.set(rel, { type: 'symlink', target: fs.readlinkSync(abs) });
    else if (st.isFIFO()) out.set(rel, { type: 'fifo' });
    else out.set(rel, { type: 'file', body: fs.readFileSync(abs, 'utf8'), ...(m?.mode !== undefined ? { mode: st.mode & 0o7777 } : {}) });
  };
  visit('');
  return out;
}

function expectTree(root: string, layers: ModelEntry[][]): void {
  const model = mergeLayers(layers);
  const got = treeOf(root, model);
  const show = (m: Map<string, MergedEntry>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
  expect(show(got)).toEqual(show(model));
}

let root: string;
let store: ImageStore;
const warnings: string[] = [];
const opts = { onWarning: (m: string) => warnings.push(m) };

beforeAll(async () => {
  root = tempRoot('oci');
  store = new ImageStore(path.join(root, 'images'));
  // an image already there, which every refused import must leave as it was
  const { makeTar } = await import('../image/tarhelp.js');
  await store.importTar(
    streamOf(
      await makeTar([
        { name: './', type: 'directory' },
        { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
      ]),
    ),
    'seed',
  );
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function expectRefused(make: () => Promise<unknown>, re: RegExp, code = 'hostile-archive'): Promise<void> {
  const before = fs.existsSync(store.dir) ? snapshot(store.dir) : new Map<string, string>();
  const e = await make().then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'the import should have failed').toBeDefined();
  expect(isPaeneError(e) ? `${e.code}: ${e.message}` : String(e)).toMatch(new RegExp(`^${code}: .*${re.source}`));
  const after = snapshot(store.dir, { skip: (rel) => rel === 'lock' });
  before.delete('lock');
  expect(diffSnapshots(before, after)).toEqual([]);
}

describe('layered image import', () => {
  it('an OCI layout tar: whiteouts, opaque dirs, hard links across layers, gzip and zstd layers, merged as the model says', async () => {
    const s = stack();
    const img: TestImage = {
      layers: s.map((l) => l.tl),
      config: {
        Env: ['PATH=/usr/bin:/bin', 'GREETING=hi'],
        Cmd: ['/bin/tool'],
        WorkingDir: '/opt',
        User: '0:0',
        ExposedPorts: { '80/tcp': {} },
        Labels: { a: 'b' },
      },
    };
    const info = await store.importTar(streamOf(await ociTar([img])), 'oci1', opts);
    expectTree(
      info.rootfs,
      s.map((l) => l.model),
    );
    expect(info.format).toBe('oci');
    expect(info.config?.run).toEqual({
      env: ['PATH=/usr/bin:/bin', 'GREETING=hi'],
      entrypoint: [],
      cmd: ['/bin/tool'],
      workingDir: '/opt',
      user: '0:0',
      exposedPorts: ['80/tcp'],
      labels: { a: 'b' },
    });
    expect(info.config?.layers.map((l) => l.compression)).toEqual(['gzip', 'zstd', 'none']);
    // hard links stay links: one inode for usr/bin/tool, its alias and the layer-2 link
    const ino = (p: string) => fs.statSync(path.join(info.rootfs, p)).ino;
    expect(ino('usr/bin/tool-alias')).toBe(ino('usr/bin/tool'));
    expect(ino('opt/tool-link2')).toBe(ino('usr/bin/tool'));
    // the same file in two layers is one object
    expect(ino('copy/same-in-two')).toBe(ino('same-in-two'));
  });

  it('a docker-archive (duplicate layer saved as a symlink) gives the same tree', async () => {
    const s = stack();
    const dup = layer([f('dup', 'same layer twice')]);
    const img: TestImage = { layers: [...s.map((l) => l.tl), dup.tl, dup.tl] };
    const info = await store.importTar(streamOf(await dockerTar(img, { linkDuplicate: true })), 'docker1', opts);
    expectTree(info.rootfs, [...s.map((l) => l.model), dup.model, dup.model]);
    expect(info.format).toBe('docker');
  });

  it('an OCI layout directory, an OCI tar that is itself gzip-compressed, and GNU tar of the directory', async () => {
    const s = stack();
    const dir = path.join(root, 'layout');
    await ociDir(dir, [{ layers: s.map((l) => l.tl) }]);
    const a = await store.importLayout(dir, 'ocidir', opts);
    expectTree(
      a.rootfs,
      s.map((l) => l.model),
    );
    const zlib = await import('node:zlib');
    const b = await store.importTar(streamOf(zlib.gzipSync(await ociTar([{ layers: s.map((l) => l.tl) }]))), 'ocigz', opts);
    expectTree(
      b.rootfs,
      s.map((l) => l.model),
    );
    // GNU tar of the directory: the archive starts with ./ and names are ./oci-layout …
    const { spawnSync } = await import('node:child_process');
    const t = spawnSync('tar', ['-cf', '-', '-C', dir, '.'], { maxBuffer: 1 << 28 });
    expect(t.status).toBe(0);
    const c = await store.importTar(streamOf(t.stdout), 'ocidot', opts);
    expect(c.format).toBe('oci');
    expectTree(
      c.rootfs,
      s.map((l) => l.model),
    );
  });

  it('a two-platform index: the host platform by default, --platform picks the other, an absent one is refused', async () => {
    const amd = layer([f('arch', 'amd64')]);
    const arm = layer([f('arch', 'arm64')]);
    const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const archive = await ociTar([
      { layers: [amd.tl], platform: { os: 'linux', architecture: 'amd64' } },
      { layers: [arm.tl], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    const def = await store.importTar(streamOf(archive), 'multi-host', opts);
    expect(fs.readFileSync(path.join(def.rootfs, 'arch'), 'utf8')).toBe(host);
    const other = host === 'amd64' ? 'linux/arm64/v8' : 'linux/amd64';
    const o = await store.importTar(streamOf(archive), 'multi-other', { ...opts, platform: other });
    expect(fs.readFileSync(path.join(o.rootfs, 'arch'), 'utf8')).toBe(host === 'amd64' ? 'arm64' : 'amd64');
    expect(o.config?.platform.architecture).toBe(host === 'amd64' ? 'arm64' : 'amd64');
    await expectRefused(
      () => store.importTar(streamOf(archive), 'multi-none', { ...opts, platform: 'linux/s390x' }),
      /no image for platform linux\/s390x; the archive has linux\/amd64, linux\/arm64\/v8/,
      'not-found',
    );
  });

  it('an OCI layout of several named images: --tag picks one', async () => {
    const a = layer([f('which', 'a')]);
    const b = layer([f('which', 'b')]);
    const archive = await ociTar([
      { layers: [a.tl], ref: 'app' },
      { layers: [b.tl], ref: 'db' },
    ]);
    const info = await store.importTar(streamOf(archive), 'tagged-db', { ...opts, tag: 'db' });
    expect(fs.readFileSync(path.join(info.rootfs, 'which'), 'utf8')).toBe('b');
    await expectRefused(
      () => store.importTar(streamOf(archive), 'tagged-none', { ...opts, tag: 'web' }),
      /no image named "web"; the archive has "app", "db"/,
      'not-found',
    );
  });

  it('two images sharing a base layer store its files once (image du)', async () => {
    const big = 'B'.repeat(256 * 1024);
    const base = layer([d('lib'), f('lib/libbig.so', big), f('lib/libbig2.so', big + 'x')], 'gzip');
    const before = store.du();
    await store.importTar(streamOf(await ociTar([{ layers: [base.tl, layer([f('app', 'one')]).tl] }])), 'share-a', opts);
    await store.importTar(streamOf(await dockerTar({ layers: [base.tl, layer([f('app', 'two')]).tl] })), 'share-b', opts);
    const after = store.du();
    const addedUnique = after.uniqueBytes - before.uniqueBytes;
    const addedLogical = after.logicalBytes - before.logicalBytes;
    expect(addedLogical).toBe(2 * (big.length * 2 + 1) + 6);
    expect(addedUnique).toBe(big.length * 2 + 1 + 6); // the base layer's files once
    const a = store.get('share-a').rootfs;
    const b = store.get('share-b').rootfs;
    expect(fs.statSync(path.join(a, 'lib/libbig.so')).ino).toBe(fs.statSync(path.join(b, 'lib/libbig.so')).ino);
  });
});

describe('layered import refuses, leaving the store as it was', () => {
  const base = (): TestLayer =>
    layer([
      d('etc'),
      f('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'),
      { path: 'lnk', type: 'symlink', target: '/etc' },
      { path: 'rel', type: 'symlink', target: '../../..' },
    ]).tl;
  const raw = (entries: Ent[], compression: TestLayer['compression'] = 'none'): TestLayer => ({ entries, compression });

  it('a layer blob whose digest does not match its descriptor', async () => {
    const archive = await ociTar([{ layers: [base(), layer([f('x', 'y')], 'gzip').tl] }], (files) => {
      const layerFile = files.find((x) => x.name.startsWith('blobs/') && x.data[0] === 0x1f)!;
      layerFile.data = Buffer.from(layerFile.data);
      layerFile.data[layerFile.data.length - 5] ^= 1; // one bit of the gzip trailer
    });
    await expectRefused(() => store.importTar(streamOf(archive), 'bad-digest', opts), /layer 2 .*digest mismatch/);
  });

  it('a layer whose uncompressed digest is not the config diff_id (docker-archive)', async () => {
    const good = await dockerTar({ layers: [base()] });
    // Rewrite manifest.json's layer to one with different content under the same name: rebuild with a foreign config.
    const other = await dockerTar({ layers: [layer([f('other', 'x')]).tl] });
    const { makeTar } = await import('../image/tarhelp.js');
    const tar = await import('tar-stream');
    const read = async (buf: Buffer) => {
      const out: Ent[] = [];
      const ex = tar.default.extract();
      const done = (async () => {
        for await (const e of ex) {
          const chunks: Buffer[] = [];
          for await (const c of e) chunks.push(c as Buffer);
          out.push({ ...e.header, name: e.header.name, body: e.header.type === 'file' ? Buffer.concat(chunks) : undefined });
        }
      })();
      ex.end(buf);
      await done;
      return out;
    };
    const g = await read(good);
    const o = await read(other);
    const oLayer = o.find((e) => e.name.endsWith('layer.tar'))!;
    const mixed = g.map((e) => (e.name.endsWith('layer.tar') ? { ...e, body: oLayer.body, size: (oLayer.body as Buffer).length } : e));
    await expectRefused(
      async () => store.importTar(streamOf(await makeTar(mixed)), 'bad-diffid', opts),
      /layer 1 .*digest mismatch of the uncompressed layer/,
    );
  });

  it('a manifest whose size does not match the index', async () => {
    const archive = await ociTar([{ layers: [base()] }], (files) => {
      const idx = files.find((x) => x.name === 'index.json')!;
      const j = JSON.parse(idx.data.toString()) as { manifests: Array<{ size: number }> };
      j.manifests[0].size += 1;
      idx.data = Buffer.from(JSON.stringify(j));
    });
    await expectRefused(() => store.importTar(streamOf(archive), 'bad-size', opts), /size mismatch/);
  });

  it('hostile names inside a later layer: whiteout pointing outside, .. , writing through a symlink of a lower layer', async () => {
    const cases: Array<[Ent[], RegExp]> = [
      [[{ name: '.wh...', body: '' }], /whiteout of "\.\." would point outside/],
      [[{ name: 'etc/.wh..', body: '' }], /whiteout of "\." would point outside/],
      [[{ name: '.wh..wh.evil', body: '' }], /unknown whiteout marker/],
      [[{ name: 'etc/../../x', body: 'x' }], /'\.\.' component/],
      [[{ name: 'lnk/passwd', body: 'owned' }], /parent "lnk" is a symlink/],
      [[{ name: 'lnk/.wh.passwd', body: '' }], /whiteout through "lnk", which is a symlink/],
      [[{ name: 'rel/.wh..wh..opq', body: '' }], /parent "rel" is a symlink/],
      [[{ name: 'x', type: 'link', linkname: '../etc/passwd' }], /'\.\.' component/],
      [[{ name: 'x', type: 'link', linkname: 'nope' }], /not an earlier entry/],
    ];
    for (const [i, [ents, re]] of cases.entries()) {
      for (const c of ['none', 'gzip'] as const)
        await expectRefused(
          async () => store.importTar(streamOf(await ociTar([{ layers: [base(), raw(ents, c)] }])), `hostile-${i}`, opts),
          re,
        );
    }
    // the symlinks' targets on the host are untouched
    expect(fs.readFileSync('/etc/passwd', 'utf8')).not.toContain('owned');
  });

  it('an oversized header inside a layer hits --max-bytes before any data is read', async () => {
    const { rawEntry, rawHeader } = await import('../image/tarhelp.js');
    // a header that declares 8 GiB, with no data behind it
    const huge = Buffer.concat([
      rawHeader({ name: 'huge', size: 0, sizeField: Buffer.from((8 * 1024 ** 3).toString(8).padStart(11, '0') + '\0') }),
      rawEntry({ name: 'after' }),
      Buffer.alloc(1024),
    ]);
    const archive = await ociTar([{ layers: [base(), { entries: [], raw: huge }] }]);
    await expectRefused(
      () => store.importTar(streamOf(archive), 'huge', { ...opts, maxBytes: 1024 ** 3 }),
      /more than 1073741824 bytes of file data/,
      'limit-exceeded',
    );
  });

  it('device nodes in a layer are skipped with a warning', async () => {
    warnings.length = 0;
    const info = await store.importTar(
      streamOf(
        await ociTar([
          {
            layers: [
              base(),
              raw([
                { name: 'dev/', type: 'directory' },
                { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
              ]),
            ],
          },
        ]),
      ),
      'devs',
      opts,
    );
    expect(fs.existsSync(path.join(info.rootfs, 'dev/sda'))).toBe(false);
    expect(warnings.join('\n')).toMatch(/skipped device node "dev\/sda"/);
  });

  it('an import interrupted mid-stream leaves nothing', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 7);
    const archive = await ociTar([{ layers: [base(), layer([f('a', big.toString('latin1'))]).tl, layer([f('b', 'b')]).tl] }]);
    let sent = 0;
    const cut = new Readable({
      read() {
        if (sent >= archive.length * 0.8) {
          this.destroy(new Error('connection reset'));
          return;
        }
        this.push(archive.subarray(sent, sent + 65536));
        sent += 65536;
      },
    });
    await expectRefused(() => store.importTar(cut, 'cut', opts), /connection reset/);
    // and cut off while a layer is being applied: its blob is a gzip stream that
    // ends half-way (the descriptors match it, so nothing refuses it earlier)
    const zlib = await import('node:zlib');
    const { makeTar } = await import('../image/tarhelp.js');
    const many = await makeTar(Array.from({ length: 40 }, (_, i) => ({ name: `f${i}`, body: Buffer.alloc(64 * 1024, i) })));
    const gz = zlib.gzipSync(many, { level: 1 });
    const dir = path.join(root, 'layout-cut');
    await ociDir(dir, [{ layers: [base(), { entries: [], raw: gz.subarray(0, gz.length >> 1) }] }]);
    await expectRefused(
      () => store.importLayout(dir, 'cut2', opts),
      /layer 2 .*corrupt or truncated archive after entry "f\d+": gzip: unexpected end of file/,
    );
  });
});

describe('telling the kind of archive by its first entry', () => {
  it('reads the first name through PAX and GNU long-name headers, and knows image-archive names', async () => {
    const { firstEntryName, isImageArchiveName } = await import('../../src/image/oci.js');
    const { makeTar, rawEntry, paxRecord, rawTar } = await import('../image/tarhelp.js');
    expect(firstEntryName(await makeTar([{ name: 'oci-layout', body: '{}' }]))).toBe('oci-layout');
    expect(firstEntryName(await makeTar([{ name: 'x/'.repeat(80) + 'long', body: '' }]))).toBe('x/'.repeat(80) + 'long');
    expect(
      firstEntryName(rawTar(rawEntry({ name: 'PaxHeader', typeflag: 'x' }, paxRecord('path', 'index.json')), rawEntry({ name: 'short' }))),
    ).toBe('index.json');
    expect(firstEntryName(rawTar(rawEntry({ name: '././@LongLink', typeflag: 'L' }, 'manifest.json\0'), rawEntry({ name: 'trunc' })))).toBe(
      'manifest.json',
    );
    expect(
      firstEntryName(
        await makeTar([
          { name: './', type: 'directory' },
          { name: './oci-layout', body: '{}' },
        ]),
      ),
    ).toBe('./oci-layout');
    expect(
      firstEntryName(
        await makeTar([
          { name: './', type: 'directory' },
          { name: './bin/', type: 'directory' },
        ]),
      ),
    ).toBe('./bin/');
    expect(firstEntryName(Buffer.alloc(100))).toBe('more');
    expect(firstEntryName(Buffer.alloc(1024))).toBe('');
    const hex = 'a'.repeat(64);
    for (const yes of [
      'oci-layout',
      './index.json',
      'manifest.json',
      'repositories',
      'blobs/',
      'blobs/sha256/x',
      `${hex}/`,
      `${hex}.json`,
      `${hex}.tar`,
    ])
      expect(isImageArchiveName(yes), yes).toBe(true);
    for (const no of ['./', 'etc/', 'bin/sh', 'index.json.bak', `${hex}x/`, 'blobsy', 'manifest.json/x'])
      expect(isImageArchiveName(no), no).toBe(false);
  });
});

describe('an OCI layout directory is read without following symlinks', () => {
  it('refuses a blob that is a symlink (it could point the import at a host file)', async () => {
    const dir = path.join(root, 'layout-symlink');
    await ociDir(dir, [{ layers: [layer([f('a', 'b')]).tl] }]);
    const blobs = path.join(dir, 'blobs/sha256');
    const victim = fs
      .readdirSync(blobs)
      .map((n) => path.join(blobs, n))
      .find((p) => fs.readFileSync(p, 'utf8').includes('"layers"') && fs.readFileSync(p, 'utf8').includes('schemaVersion'))!;
    const moved = path.join(root, 'moved-manifest');
    fs.renameSync(victim, moved);
    fs.symlinkSync(moved, victim);
    await expectRefused(() => store.importLayout(dir, 'symlinked', opts), /is not a regular file \(symlinks are not followed\)/);
  });
});

describe('an image archive file is read in place, through an index of its headers', () => {
  it('OCI tar, docker-archive with a linked duplicate layer and GNU tar of a layout give the trees of the model; no spool copy', async () => {
    const s = stack();
    const dup = layer([f('dup', 'same layer twice')]);
    const models = [...s.map((l) => l.model), dup.model, dup.model];
    const oci = path.join(root, 'inplace.oci.tar');
    fs.writeFileSync(oci, await ociTar([{ layers: [...s.map((l) => l.tl), dup.tl, dup.tl] }]));
    const docker = path.join(root, 'inplace.docker.tar');
    fs.writeFileSync(docker, await dockerTar({ layers: [...s.map((l) => l.tl), dup.tl, dup.tl] }, { linkDuplicate: true }));
    const dir = path.join(root, 'inplace-layout');
    await ociDir(dir, [{ layers: [...s.map((l) => l.tl), dup.tl, dup.tl] }]);
    const gnu = path.join(root, 'inplace.gnu.tar');
    const { spawnSync } = await import('node:child_process');
    // --format=posix: PAX headers in front of entries, which the index must read too
    expect(spawnSync('tar', ['--format=posix', '-cf', gnu, '-C', dir, '.']).status).toBe(0);
    const staged: string[] = [];
    const watch = setInterval(() => {
      for (const d of fs.existsSync(store.stagingDir) ? fs.readdirSync(store.stagingDir) : [])
        if (fs.existsSync(path.join(store.stagingDir, d, 'archive'))) staged.push(d);
    }, 1);
    try {
      for (const [file, name, format] of [
        [oci, 'inplace-oci', 'oci'],
        [docker, 'inplace-docker', 'docker'],
        [gnu, 'inplace-gnu', 'oci'],
      ] as const) {
        const info = await store.importFile(file, name, opts);
        expect(info.format).toBe(format);
        expectTree(info.rootfs, models);
      }
    } finally {
      clearInterval(watch);
    }
    expect(staged).toEqual([]);
  });

  it('refuses a file whose headers lie (bad checksum, a size past the end), leaving the store as it was', async () => {
    const good = await ociTar([{ layers: [layer([f('a', 'b')]).tl] }]);
    const badSum = Buffer.from(good);
    const second = 512 + Math.ceil(Number.parseInt(good.subarray(124, 136).toString('latin1').trim(), 8) / 512) * 512;
    badSum[second + 10] ^= 1; // a name byte of the second header, checksum not fixed
    const short = good.subarray(0, good.length - 3000);
    for (const [buf, re] of [
      [badSum, /bad header checksum/],
      [short, /past the end of the archive|truncated/],
    ] as const) {
      const file = path.join(root, 'lying.tar');
      fs.writeFileSync(file, buf);
      await expectRefused(() => store.importFile(file, 'lying', opts), re);
    }
  });
});
