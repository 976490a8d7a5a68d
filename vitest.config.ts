import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Projects (npm run test:unit | test:kernel | test:e2e; npm test runs all):
//   unit     pure code and the native programs' message round trips: no root, quick
//   kernel   real namespaces, cgroups, mounts, BPF on this kernel (root)
//   e2e      whole commands and their clients: the CLI, the API, paene-runc under
//            containerd, Docker, Podman and the CRI, the OCI conformance suite
//   *-measuring  the kernel and e2e files that measure CPU or I/O (describeMeasuring
//            in test/helpers.ts): shares, latency, throttled rates, holds
//   v2       the cgroup and lifecycle tests again on a pure cgroup v2 kernel under qemu
// As two groups (sequence.groupOrder): first the unit files and the kernel and e2e files
// that do not measure, three at a time (each has its own state root, names, cgroup parent
// and network namespaces, and most of their time is spent waiting on daemons, starts and
// builds; the long e2e files start first, the unit files fill the end of the group, so
// no worker idles while the other finishes a unit group of its own); then, one at a time
// and alone, the files that measure (so nothing measures beside them) and the v2 file last.
// The v2 VM boots when the run starts (its project's globalSetup, test/v2/vm.ts) and
// runs beside the others; the files that measure wait for it to end, and the v2 file
// only reads its outcome.
const UNIT = ['test/unit'];
const KERNEL = ['test/kernel', 'test/runtime', 'test/security', 'test/isolation', 'test/net', 'test/image'];
const E2E = ['test/cli', 'test/api', 'test/oci', 'test/clients', 'test/bench'];
const V2 = ['test/v2'];
// Three files at a time in the first group: with two, the CPU was 40-60% idle from the VM's end to the
// group's (a fresh-clone run sampled every 5 s, 2026-12-07): those files wait on daemons, starts and sleeps.
const GROUP_WORKERS = 3;
const glob = (dirs: string[]) => dirs.map((d) => `${d}/**/*.test.ts`);

// The run's cache (test/fixture.ts): the base image, built once and copied into each fixture's state root.
// Named here, in the run's main process, whose environment the workers inherit; made by the first fixture
// that needs it (a run without one leaves nothing); removed when the run exits.
if (!process.env.PAENE_TEST_CACHE) {
  const cache = path.join(os.tmpdir(), `paene-test-cache-${process.pid}-${Date.now()}`);
  process.env.PAENE_TEST_CACHE = cache;
  process.on('exit', () => fs.rmSync(cache, { recursive: true, force: true }));
}

/** Whether a test file measures CPU or I/O (it says so by describeMeasuring). */
const measures = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8').includes('describeMeasuring(');
  } catch {
    return false;
  }
};

/** The test files under dirs that measure, as include patterns (relative to the root). */
function measuring(dirs: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.test.ts') && measures(p)) out.push(p);
    }
  };
  for (const d of dirs) walk(d);
  return out.sort();
}

/** A tier split in two: the files that do not measure (three at a time, first group) and those that do (alone, last group). */
function tier(name: string, dirs: string[]): TestProjectInlineConfiguration[] {
  const alone = measuring(dirs);
  return [
    {
      extends: true,
      test: { name, include: glob(dirs), exclude: alone, fileParallelism: true, maxWorkers: GROUP_WORKERS, sequence: { groupOrder: 1 } },
    },
    // an empty include would fall back to vitest's default (every file): a pattern that matches nothing instead
    { extends: true, test: { name: `${name}-measuring`, include: alone.length ? alone : ['test/.none/*.test.ts'] } },
  ];
}

/** vitest's order (failed first, then the longest), then: the files that measure after the others, the v2 VM's last. */
class Sequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => (f.project.name === 'v2' ? 2 : measures(f.moduleId) ? 1 : 0);
    return sorted
      .map((f, i) => ({ f, i, r: rank(f) }))
      .sort((a, b) => a.r - b.r || a.i - b.i)
      .map((x) => x.f);
  }
}

export default defineConfig({
  test: {
    // a project that does not say otherwise runs its files one at a time, after the groups (vitest's "sequential" group)
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    sequence: { sequencer: Sequencer },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: glob(UNIT), fileParallelism: true, maxWorkers: GROUP_WORKERS, sequence: { groupOrder: 1 } },
      },
      ...tier('kernel', KERNEL),
      ...tier('e2e', E2E),
      { extends: true, test: { name: 'v2', include: glob(V2), globalSetup: ['test/v2/vm.ts'] } },
    ],
  },
});
