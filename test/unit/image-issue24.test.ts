// Issue 24's image defects: a tar is an image archive by any top-level
// manifest.json / index.json, not by its first member's name alone; an
// import says what the store grew by (what `commit` prints); natural order
// of names.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/image/store.js';
import { isPaeneError } from '../../src/model/errors.js';
import { naturalCompare, naturalSort } from '../../src/model/natural.js';
import { tempRoot } from '../helpers.js';
import { buildImage } from '../image/ocihelp.js';
import { type Ent, makeTar, streamOf } from '../image/tarhelp.js';

/** A docker-archive whose names the format leaves free: l0/layer.tar, l1/layer.tar, cfg.json, manifest.json last. */
async function freeNamedDockerTar(): Promise<Buffer> {
  const b = await buildImage({
    layers: [
      {
        entries: [
          { name: 'bin/', type: 'directory' },
          { name: 'bin/tool', body: 'tool', mode: 0o755 },
        ],
      },
      {
        entries: [
          { name: 'etc/', type: 'directory' },
          { name: 'etc/os-release', body: 'free names\n' },
        ],
      },
    ],
    config: { Cmd: ['/bin/tool'], Env: ['A=1'] },
  });
  const ents: Ent[] = [];
  for (const [i, l] of b.layers.entries()) {
    ents.push({ name: `l${i}/`, type: 'directory' });
    ents.push({ name: `l${i}/layer.tar`, body: l.data });
  }
  ents.push({ name: 'cfg.json', body: b.config.data });
  ents.push({
    name: 'manifest.json',
    body: JSON.stringify([{ Config: 'cfg.json', RepoTags: ['free:latest'], Layers: ['l0/layer.tar', 'l1/layer.tar'] }]),
  });
  return makeTar(ents);
}

describe('issue 24: what a tar is', () => {
  let root: string;
  let store: ImageStore;
  beforeAll(() => {
    root = tempRoot('img24');
    store = new ImageStore(path.join(root, 'images'));
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('a docker-archive with free member names, read from a file, imports as an image (layers and config), not as a flat root', async () => {
    const file = path.join(root, 'free.tar');
    fs.writeFileSync(file, await freeNamedDockerTar());
    const info = await store.importFile(file, 'free');
    expect(info.format).toBe('docker');
    expect(fs.readFileSync(path.join(info.rootfs, 'bin/tool'), 'utf8')).toBe('tool');
    expect(fs.readFileSync(path.join(info.rootfs, 'etc/os-release'), 'utf8')).toBe('free names\n');
    expect(fs.existsSync(path.join(info.rootfs, 'manifest.json'))).toBe(false);
    expect(fs.existsSync(path.join(info.rootfs, 'l0'))).toBe(false);
    expect(info.config?.run.cmd).toEqual(['/bin/tool']);
  });

  it('the same archive from a pipe or compressed is refused as ambiguous, never imported as a flat root holding manifest.json', async () => {
    const bytes = await freeNamedDockerTar();
    for (const [name, input] of [
      ['piped', streamOf(bytes)],
      ['gz', streamOf(zlib.gzipSync(bytes))],
    ] as const) {
      const e = await store.importTar(input, name).catch((x: unknown) => x);
      expect(isPaeneError(e, 'hostile-archive'), String(e)).toBe(true);
      expect((e as Error).message).toMatch(/ambiguous archive: it has a top-level manifest\.json/);
      expect(store.has(name)).toBe(false);
    }
    const gzFile = path.join(root, 'free.tar.gz');
    fs.writeFileSync(gzFile, zlib.gzipSync(bytes));
    await expect(store.importFile(gzFile, 'gzfile')).rejects.toThrow(/ambiguous archive/);
  });

  it('a root filesystem tar with index.json deeper down (not top-level) is still a root filesystem', async () => {
    const bytes = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/index.json', body: '{}' },
      { name: 'srv/manifest.json', body: '[]' },
    ]);
    const info = await store.importTar(streamOf(bytes), 'flat');
    expect(info.format).toBe('tar');
    expect(fs.readFileSync(path.join(info.rootfs, 'etc/index.json'), 'utf8')).toBe('{}');
  });

  it('an import says what the store grew by, not the image share of files it shares (commit prints it)', async () => {
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(src, `big${i}`), Buffer.alloc(256 * 1024, i + 1));
    await store.importDirectory(src, 'tree-a');
    fs.writeFileSync(path.join(src, 'small'), 'one new small file');
    const before = store.du().physicalBytes;
    const info = await store.importDirectory(src, 'tree-b');
    const grown = store.du().physicalBytes - before;
    expect(info.diskBytes).toBeGreaterThan(1024 * 1024); // its share of the 2 MiB it shares with tree-a
    expect(info.addedBytes).toBeDefined();
    expect(Math.abs((info.addedBytes as number) - grown)).toBeLessThan(64 * 1024);
    expect(info.addedBytes as number).toBeLessThan(128 * 1024);
  });
});

describe('natural order', () => {
  it('digit runs compare as numbers', () => {
    expect(naturalSort(['db1', 'db10', 'db100', 'db11', 'db2', 'app', 'db01'])).toEqual([
      'app',
      'db01',
      'db1',
      'db2',
      'db10',
      'db11',
      'db100',
    ]);
    expect(naturalCompare('web9', 'web10')).toBeLessThan(0);
    expect(naturalCompare('a99999999999999999999', 'a100000000000000000000')).toBeLessThan(0);
    expect(naturalCompare('x', 'x')).toBe(0);
  });
});
