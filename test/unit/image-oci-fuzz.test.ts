// Fuzz-style, per layer: seeded corruptions of a top layer (and of the
// archive around it), stacked on a base layer whose symlinks point at a
// sentinel directory outside the store. The archive's digests are made to
// match the corrupted layer, so the corruption reaches the layer parser and
// the whiteout rules. Each variant imports or fails with a PaeneError; after
// each, with the image removed again, the test root is exactly as before.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/image/store.js';
import { type FuzzBed, fuzzBed, fuzzBudgetMs, fuzzLoop, fuzzVariants } from '../image/fuzzhelp.js';
import { type TestLayer, ociTar } from '../image/ocihelp.js';
import { makeTar, mutateTar, paxRecord, rawEntry, streamOf } from '../image/tarhelp.js';

const SEED = Number(process.env.PAENE_FUZZ_SEED ?? 20261202);
// the full count in the whole suite (npm test sets PAENE_FUZZ=full); a quick share in the unit tier
const VARIANTS = fuzzVariants(150);
const BUDGET_MS = fuzzBudgetMs(40_000);

let bed: FuzzBed;
let sentinel: string;
let store: ImageStore;

beforeAll(async () => {
  bed = await fuzzBed('oci-fuzz');
  ({ sentinel, store } = bed);
});
afterAll(() => bed.dispose());

async function baseLayer(): Promise<TestLayer> {
  return {
    compression: 'gzip',
    entries: [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/busybox', body: Buffer.alloc(3000, 0x90), mode: 0o755 },
      { name: 'out', type: 'symlink', linkname: sentinel },
      { name: 'rel', type: 'symlink', linkname: '../../sentinel' },
      { name: 'var/cache/a', body: 'a' },
      { name: 'gone', body: 'g' },
    ],
  };
}

/** The top layer's tar: whiteouts, an opaque dir, a cross-layer hard link; the hostile one also aims through `out`. */
async function topTar(hostile: boolean): Promise<Buffer> {
  const t = await makeTar([
    { name: '.wh.gone', body: '' },
    { name: 'var/cache/.wh..wh..opq', body: '' },
    { name: 'var/cache/b', body: 'b' },
    { name: 'bin/sh', type: 'link', linkname: 'bin/busybox' },
    { name: 'etc/.wh.passwd', body: '' },
    { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\napp:x:1:1::/:/bin/sh\n' },
    { name: 'data', body: Buffer.alloc(1500, 0x41) },
  ]);
  const extra = hostile
    ? Buffer.concat([
        rawEntry({ name: 'p', typeflag: 'x' }, paxRecord('path', 'out/.wh.secret')),
        rawEntry({ name: 'harmless' }),
        rawEntry({ name: 'rel/.wh..wh..opq' }),
      ])
    : Buffer.alloc(0);
  return Buffer.concat([t.subarray(0, t.length - 1024), extra, Buffer.alloc(1024)]);
}

describe('layered import fuzz', () => {
  it(`${VARIANTS} corrupted top layers (and archives) import or fail cleanly, never reaching outside (seed ${SEED})`, async () => {
    const base = await baseLayer();
    const clean = await topTar(false);
    const hostile = await topTar(true);
    const archive = (top: Buffer) => ociTar([{ layers: [base, { entries: [], raw: top }] }]);
    // Unmodified: the clean one imports; the hostile one is refused at its whiteout through the symlink.
    await store.importTar(streamOf(await archive(clean)), 'plain');
    store.remove('plain', []);
    await expect(store.importTar(streamOf(await archive(hostile)), 'plain')).rejects.toThrow(/whiteout through "out", which is a symlink/);

    // Mostly the layer (digests fixed up around it); sometimes the whole archive (digests then mismatch).
    const run = await fuzzLoop(bed, {
      seed: SEED,
      variants: VARIANTS,
      budgetMs: BUDGET_MS,
      fromFile: 0.4,
      make: async (r) => {
        const top = r() < 0.5 ? clean : hostile;
        return r() < 0.8 ? archive(mutateTar(top, r)) : mutateTar(await archive(top), r);
      },
    });
    expect(run.variants).toBeGreaterThanOrEqual(Math.min(VARIANTS, 60));
    expect(run.imported).toBeGreaterThan(0);
    console.log(`layered fuzz: ${run.variants} variants in ${run.ms} ms: ${run.imported} imported, refused ${JSON.stringify(run.refused)}`);
  }, 90_000);
});
