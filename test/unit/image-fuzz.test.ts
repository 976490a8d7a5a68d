// Fuzz-style: ~200 randomly corrupted variants of a valid archive (seeded, so
// a failure reproduces). Each either imports or fails with a PaeneError; after
// each, with the image removed again, the whole test root — a sentinel dir
// outside the store and the store itself — is exactly as before.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/image/store.js';
import { type FuzzBed, fuzzBed, fuzzBudgetMs, fuzzLoop, fuzzVariants } from '../image/fuzzhelp.js';
import { makeTar, mutateTar, paxRecord, rawEntry, streamOf } from '../image/tarhelp.js';

const SEED = Number(process.env.PAENE_FUZZ_SEED ?? 20240601);
// the full count in the whole suite (npm test sets PAENE_FUZZ=full); a quick share in the unit tier
const VARIANTS = fuzzVariants(200);
const BUDGET_MS = fuzzBudgetMs(45_000);

let bed: FuzzBed;
let sentinel: string;
let store: ImageStore;

beforeAll(async () => {
  bed = await fuzzBed('image-fuzz');
  ({ sentinel, store } = bed);
});
afterAll(() => bed.dispose());

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
      ? [
          rawEntry({ name: 'p', typeflag: 'x' }, paxRecord('path', 'out/evil')),
          rawEntry({ name: 'harmless' }, 'would go through the symlink'),
        ]
      : []),
  ]);
  return Buffer.concat([t.subarray(0, t.length - 1024), extra, Buffer.alloc(1024)]);
}

describe('import fuzz', () => {
  it(`${VARIANTS} corrupted variants import or fail cleanly, never writing outside (seed ${SEED})`, async () => {
    const clean = await validArchive(false);
    const hostile = await validArchive(true);
    // Unmodified: the clean one imports; the hostile one's 'out/evil' (a PAX path through a symlink) is refused.
    await store.importTar(streamOf(clean), 'plain');
    store.remove('plain', []);
    await expect(store.importTar(streamOf(hostile), 'plain')).rejects.toThrow(/entry "out\/evil": parent "out" is a symlink/);

    const run = await fuzzLoop(bed, {
      seed: SEED,
      variants: VARIANTS,
      budgetMs: BUDGET_MS,
      make: async (r) => mutateTar(r() < 0.5 ? clean : hostile, r),
    });
    expect(run.variants).toBeGreaterThanOrEqual(Math.min(VARIANTS, 100));
    console.log(`fuzz: ${run.variants} variants in ${run.ms} ms: ${run.imported} imported, refused ${JSON.stringify(run.refused)}`);
  });
});
