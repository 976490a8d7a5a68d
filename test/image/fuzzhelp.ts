// The harness of the import fuzz tests: a test root with a sentinel
// directory outside the store (which hostile symlinks point at), and a loop
// that imports seeded variants and checks after each that nothing outside
// the variant's own image changed.

import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { PaeneError } from '../../src/model/errors.js';
import { ImageStore } from '../../src/image/store.js';
import { tempRoot } from '../helpers.js';
import { diffSnapshots, makeTar, prng, snapshot, streamOf } from './tarhelp.js';

/**
 * How much fuzzing a run does: PAENE_FUZZ=full (what `npm test` sets) runs
 * the whole count within the full budget; otherwise (the unit tier, which
 * must stay quick) a fifth of it. PAENE_FUZZ_VARIANTS and PAENE_FUZZ_BUDGET_MS
 * set them outright (a long soak, a failure to reproduce with its seed).
 */
const FULL = process.env.PAENE_FUZZ === 'full';
export function fuzzVariants(full: number): number {
  const v = Number(process.env.PAENE_FUZZ_VARIANTS);
  return v > 0 ? v : FULL ? full : Math.ceil(full / 5);
}
export function fuzzBudgetMs(full: number): number {
  const v = Number(process.env.PAENE_FUZZ_BUDGET_MS);
  return v > 0 ? v : FULL ? full : Math.ceil(full / 5);
}

export interface FuzzBed {
  root: string;
  sentinel: string;
  store: ImageStore;
  scratch: string; // outside root: archive files for imports from a file
  dispose(): void;
}

export async function fuzzBed(tag: string): Promise<FuzzBed> {
  const root = tempRoot(tag);
  const sentinel = path.join(root, 'sentinel');
  fs.mkdirSync(path.join(sentinel, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(sentinel, 'secret'), 'do not touch\n');
  const store = new ImageStore(path.join(root, 'images'));
  await store.importTar(streamOf(await makeTar([{ name: 'seed', body: 'seed' }])), 'seed');
  const scratch = tempRoot(`${tag}-scratch`);
  const dispose = (): void => {
    for (const d of [root, scratch]) fs.rmSync(d, { recursive: true, force: true });
  };
  return { root, sentinel, store, scratch, dispose };
}

export interface FuzzRun {
  variants: number;
  imported: number;
  refused: Record<string, number>;
  ms: number;
}

/**
 * Import up to `variants` archives from `make` (seeded) within budgetMs; each
 * imports (and is removed again) or fails with a PaeneError, and after each
 * the bed is exactly as before and no import is left in staging.
 */
export async function fuzzLoop(
  bed: FuzzBed,
  o: { seed: number; variants: number; budgetMs: number; make: (r: () => number) => Promise<Buffer>; fromFile?: number },
): Promise<FuzzRun> {
  const r = prng(o.seed);
  const before = snapshot(bed.root);
  const sentinelBefore = snapshot(bed.sentinel, { mtimes: true });
  const t0 = Date.now();
  let imported = 0;
  const refused: Record<string, number> = {};
  let i = 0;
  for (; i < o.variants && Date.now() - t0 < o.budgetMs; i++) {
    const variant = await o.make(r);
    const name = `v${i}`;
    try {
      const limits = { maxBytes: 1 << 20, maxFiles: 200 };
      // a share of the variants from a file (read in place through its header index), the rest as a stream
      if (o.fromFile !== undefined && r() < o.fromFile) {
        const file = path.join(bed.scratch, 'variant.tar');
        fs.writeFileSync(file, variant);
        await bed.store.importFile(file, name, limits);
      } else await bed.store.importTar(streamOf(variant, 1 + Math.floor(r() * 8192)), name, limits);
      imported++;
      // whatever was imported stays inside its tree: no symlink in it was followed
      bed.store.remove(name, []);
    } catch (e) {
      if (!(e instanceof PaeneError)) throw new Error(`variant ${i} (seed ${o.seed}): not a PaeneError: ${String(e)}`);
      refused[e.code] = (refused[e.code] ?? 0) + 1;
    }
    const d = diffSnapshots(before, snapshot(bed.root));
    if (d.length) throw new Error(`variant ${i} (seed ${o.seed}) changed things outside its image:\n${d.join('\n')}`);
    expect(fs.readdirSync(bed.store.stagingDir)).toEqual([]);
  }
  expect(diffSnapshots(sentinelBefore, snapshot(bed.sentinel, { mtimes: true }))).toEqual([]);
  return { variants: i, imported, refused, ms: Date.now() - t0 };
}
