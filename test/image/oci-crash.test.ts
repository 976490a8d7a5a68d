// An import killed mid-way (SIGKILL: no cleanup runs) leaves nothing that
// counts: the next writer removes its staging tree and the objects it had
// added, and the store is as before. Uses the built CLI (npm run build).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/image/store.js';
import { tempRoot } from '../helpers.js';
import { ociTar } from './ocihelp.js';
import { diffSnapshots, makeTar, prng, snapshot, streamOf } from './tarhelp.js';

let root: string;

beforeAll(() => {
  root = tempRoot('ocicrash');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const objectCount = (store: ImageStore): number => {
  let n = 0;
  for (const fan of fs.existsSync(store.objectsDir) ? fs.readdirSync(store.objectsDir) : [])
    n += fs.readdirSync(path.join(store.objectsDir, fan)).length;
  return n;
};

describe('an import killed with SIGKILL', () => {
  it('leaves the store as it was once the next writer has run', async () => {
    const store = new ImageStore(path.join(root, 'images'));
    await store.importTar(
      streamOf(
        await makeTar([
          { name: './', type: 'directory' },
          { name: 'seed', body: 'seed' },
        ]),
      ),
      'seed',
    );
    const before = snapshot(store.dir);
    before.delete('lock');

    // 3 layers of 60 files × 256 KiB of random data: slow enough to be caught mid-way
    const r = prng(5);
    const layer = (k: number) => ({
      compression: 'gzip' as const,
      entries: Array.from({ length: 60 }, (_, i) => {
        const b = Buffer.alloc(256 * 1024);
        for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((r() * 2 ** 32) >>> 0, j);
        return { name: `l${k}/f${i}`, body: b };
      }),
    });
    const file = path.join(root, 'big.oci.tar');
    fs.writeFileSync(file, await ociTar([{ layers: [layer(0), layer(1), layer(2)] }]));

    const child = spawn(process.execPath, [path.resolve('bin/paene.js'), '--root', root, 'image', 'import', file, '--name', 'crash'], {
      stdio: 'ignore',
    });
    const start = objectCount(store);
    const deadline = Date.now() + 60_000;
    // Kill it once it has added objects: the store then holds a staging tree and orphans.
    while (objectCount(store) < start + 20 && Date.now() < deadline && child.exitCode === null)
      await new Promise((res) => setTimeout(res, 5));
    expect(child.exitCode, 'the import finished before it could be killed').toBeNull();
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    expect(fs.readdirSync(store.stagingDir).length).toBeGreaterThan(0);
    expect(objectCount(store)).toBeGreaterThan(start);
    expect(store.has('crash')).toBe(false);

    // The next writer (an import) clears what the dead one left, then does its own work.
    await store.importTar(
      streamOf(
        await makeTar([
          { name: './', type: 'directory' },
          { name: 'next', body: 'next' },
        ]),
      ),
      'next',
    );
    expect(fs.readdirSync(store.stagingDir)).toEqual([]);
    expect(store.du().orphanObjects).toBe(0);
    store.remove('next', []);
    const after = snapshot(store.dir);
    after.delete('lock');
    expect(diffSnapshots(before, after)).toEqual([]);
  }, 120_000);
});
