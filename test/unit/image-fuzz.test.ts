// Fuzz-style: ~200 randomly corrupted variants of a valid archive (seeded, so
// a failure reproduces). Each either imports or fails with a PaeneError; after
// each, with the image removed again, the whole test root — a sentinel dir
// outside the store and the store itself — is exactly as before.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PaeneError } from '../../src/core/errors.js';
import { ImageStore } from '../../src/image/store.js';
import { tempRoot } from '../helpers.js';
import { diffSnapshots, makeTar, paxRecord, prng, rawEntry, snapshot, streamOf } from '../image/tarhelp.js';

const SEED = Number(process.env.PAENE_FUZZ_SEED ?? 20240601);
const VARIANTS = 200;
const BUDGET_MS = 45_000;

let root: string;
let sentinel: string;
let store: ImageStore;

beforeAll(async () => {
  root = tempRoot('image-fuzz');
  sentinel = path.join(root, 'sentinel');
  fs.mkdirSync(path.join(sentinel, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(sentinel, 'secret'), 'do not touch\n');
  store = new ImageStore(path.join(root, 'images'));
  await store.importTar(streamOf(await makeTar([{ name: 'seed', body: 'seed' }])), 'seed');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function validArchive(hostileTail: boolean): Promise<Buffer> {
  const t = await makeTar([
    { name: './', type: 'directory', mode: 0o755 },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', body: Buffer.alloc(3000, 0x90), mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/ash', type: 'link', linkname: 'bin/busybox' },
    { name: 'out', type: 'symlink', linkname: sentinel },
    { name: 'rel', type: 'symlink', linkname: '../../sentinel' },
    { name: 'usr/lib/' + 'long'.repeat(40), body: 'pax named' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'su', body: 'x', mode: 0o4755 },
    { name: 'fifo', type: 'fifo' },
    { name: 'data', body: Buffer.alloc(1500, 0x41) },
  ]);
  // Add entries tar-stream would not write (GNU long name, raw PAX), minus the end blocks.
  const extra = Buffer.concat([
    rawEntry({ name: '././@LongLink', typeflag: 'L', gnu: true }, 'gnu/' + 'n'.repeat(120) + '\0'),
    rawEntry({ name: 'x', gnu: true }, 'gnu named'),
    ...(hostileTail
      ? [rawEntry({ name: 'p', typeflag: 'x' }, paxRecord('path', 'out/evil')), rawEntry({ name: 'harmless' }, 'would go through the symlink')]
      : []),
  ]);
  return Buffer.concat([t.subarray(0, t.length - 1024), extra, Buffer.alloc(1024)]);
}

function mutate(base: Buffer, r: () => number): Buffer {
  const b = Buffer.from(base);
  const pick = Math.floor(r() * 7);
  const at = () => Math.floor(r() * b.length);
  switch (pick) {
    case 0: // flip a few random bytes
      for (let i = 0, k = 1 + Math.floor(r() * 8); i < k; i++) b[at()] ^= 1 << Math.floor(r() * 8);
      return b;
    case 1: // truncate
      return b.subarray(0, at());
    case 2: {
      // rewrite a header field with junk and fix the checksum so the parser accepts it
      const hdr = Math.floor(r() * (b.length / 512)) * 512;
      const fields: Array<[number, number]> = [[0, 100], [100, 8], [108, 8], [116, 8], [124, 12], [136, 12], [156, 1], [157, 100], [345, 155]];
      const [off, len] = fields[Math.floor(r() * fields.length)];
      const junk = ['..', '/', '../../sentinel/secret', '\0', '7777777777', 'zz', '/tmp', 'out/x', '-1', '5', '2', '1', 'L', 'x', 'S'];
      b.fill(0, hdr + off, hdr + off + len);
      b.write(junk[Math.floor(r() * junk.length)], hdr + off, len, 'latin1');
      b.fill(' ', hdr + 148, hdr + 156);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += b[hdr + i] ?? 0;
      b.write(sum.toString(8).padStart(6, '0') + '\0 ', hdr + 148, 8, 'latin1');
      return b;
    }
    case 3: {
      // duplicate a 512-byte block somewhere else
      const from = Math.floor(r() * (b.length / 512)) * 512;
      const to = Math.floor(r() * (b.length / 512)) * 512;
      return Buffer.concat([b.subarray(0, to), b.subarray(from, from + 512), b.subarray(to)]);
    }
    case 4: {
      // insert random bytes
      const pos = at();
      const junk = Buffer.alloc(1 + Math.floor(r() * 700));
      for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(r() * 256);
      return Buffer.concat([b.subarray(0, pos), junk, b.subarray(pos)]);
    }
    case 5: {
      // gzip, then corrupt the compressed stream
      const gz = zlib.gzipSync(b);
      for (let i = 0, k = 1 + Math.floor(r() * 4); i < k; i++) gz[10 + Math.floor(r() * (gz.length - 10))] ^= 0xff;
      return gz;
    }
    default: {
      // remove a block
      const blk = Math.floor(r() * (b.length / 512)) * 512;
      return Buffer.concat([b.subarray(0, blk), b.subarray(blk + 512)]);
    }
  }
}

describe('import fuzz', () => {
  it(`${VARIANTS} corrupted variants import or fail cleanly, never writing outside (seed ${SEED})`, async () => {
    const clean = await validArchive(false);
    const hostile = await validArchive(true);
    // Unmodified: the clean one imports; the hostile one's 'out/evil' (a PAX path through a symlink) is refused.
    await store.importTar(streamOf(clean), 'plain');
    store.remove('plain', []);
    await expect(store.importTar(streamOf(hostile), 'plain')).rejects.toThrow(/entry "out\/evil": parent "out" is a symlink/);

    const r = prng(SEED);
    const before = snapshot(root);
    const sentinelBefore = snapshot(sentinel, { mtimes: true });
    const t0 = Date.now();
    let imported = 0;
    let failed = 0;
    const codes = new Map<string, number>();
    let i = 0;
    for (; i < VARIANTS && Date.now() - t0 < BUDGET_MS; i++) {
      const variant = mutate(r() < 0.5 ? clean : hostile, r);
      const name = `v${i}`;
      try {
        await store.importTar(streamOf(variant, 1 + Math.floor(r() * 8192)), name, { maxBytes: 1 << 20, maxFiles: 200 });
        imported++;
        // whatever was imported stays inside its tree: no symlink in it was followed
        store.remove(name, []);
      } catch (e) {
        if (!(e instanceof PaeneError)) throw new Error(`variant ${i} (seed ${SEED}): not a PaeneError: ${String(e)}`);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        failed++;
      }
      const d = diffSnapshots(before, snapshot(root));
      if (d.length) throw new Error(`variant ${i} (seed ${SEED}) changed things outside its image:\n${d.join('\n')}`);
      expect(fs.readdirSync(store.stagingDir)).toEqual([]);
    }
    expect(diffSnapshots(sentinelBefore, snapshot(sentinel, { mtimes: true }))).toEqual([]);
    expect(i).toBeGreaterThanOrEqual(Math.min(VARIANTS, 100));
    console.log(`fuzz: ${i} variants in ${Date.now() - t0} ms: ${imported} imported, ${failed} refused ${JSON.stringify(Object.fromEntries(codes))}`);
  });
});
