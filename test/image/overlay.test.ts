// A guest's write never reaches the store: two overlays on one image (as the
// runtime mounts them), a write and a delete in one, checked against the
// store, the image and the other overlay. Mounts live in a private mount
// namespace (unshare -m), so nothing is left on the host even on failure.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ImageStore } from '../../src/image/store.js';
import { describeReal, tempRoot } from '../helpers.js';
import { diffSnapshots, makeTar, snapshot, streamOf } from './tarhelp.js';

describeReal('image under overlay', () => {
  let root: string;
  let store: ImageStore;
  beforeAll(async () => {
    root = tempRoot('image-overlay');
    store = new ImageStore(path.join(root, 'images'));
    const t = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/motd', body: 'shared\n' },
      { name: 'etc/gone', body: 'to delete\n' },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/tool', body: 'tool\n', mode: 0o755 },
    ]);
    await store.importTar(streamOf(t), 'img');
    // a second image with the same files: same objects
    await store.importTar(streamOf(t), 'img2');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it("a context's write copies up into its upper layer; store, image and the other context are unchanged", () => {
    const lower = store.get('img').rootfs;
    const before = snapshot(store.dir, { mtimes: true });
    const objIno = fs.statSync(path.join(lower, 'etc/motd')).ino;
    for (const c of ['a', 'b']) for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(root, c, d), { recursive: true });
    const script = `
      set -e
      for c in a b; do
        mount -t overlay overlay -o lowerdir=${lower},upperdir=${root}/$c/upper,workdir=${root}/$c/work ${root}/$c/merged
      done
      echo private > ${root}/a/merged/etc/motd
      rm ${root}/a/merged/etc/gone
      echo new > ${root}/a/merged/bin/new
      echo "a=$(cat ${root}/a/merged/etc/motd) b=$(cat ${root}/b/merged/etc/motd)"
      test -e ${root}/b/merged/etc/gone && echo "b-has-gone"
      test -e ${root}/b/merged/bin/new || echo "b-no-new"
    `;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('a=private b=shared\nb-has-gone\nb-no-new\n');
    // the store (objects, both trees, manifests) is exactly as before, mtimes included
    expect(diffSnapshots(before, snapshot(store.dir, { mtimes: true }))).toEqual([]);
    expect(fs.statSync(path.join(lower, 'etc/motd')).ino).toBe(objIno);
    expect(fs.readFileSync(path.join(lower, 'etc/motd'), 'utf8')).toBe('shared\n');
    // a's changes are in a's upper layer only: a private copy, a whiteout, a new file
    expect(fs.readFileSync(path.join(root, 'a/upper/etc/motd'), 'utf8')).toBe('private\n');
    expect(fs.statSync(path.join(root, 'a/upper/etc/gone')).isCharacterDevice()).toBe(true);
    expect(fs.readdirSync(path.join(root, 'b/upper'))).toEqual([]);
  });
});
