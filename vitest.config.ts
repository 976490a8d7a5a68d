import fs from 'node:fs';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Four projects (npm run test:unit | test:kernel | test:e2e; npm test runs all):
//   unit    pure code and the native programs' message round trips: no root, quick
//   kernel  real namespaces, cgroups, mounts, BPF on this kernel (root)
//   e2e     whole commands and their clients: the CLI, the API, paene-runc under
//           containerd, Docker, Podman and the CRI, the OCI conformance suite
//   v2      the cgroup and lifecycle tests again on a pure cgroup v2 kernel under qemu
// Real-kernel tests measure CPU, memory and I/O on a shared 2-core machine:
// kernel and e2e files run one at a time so they do not measure each other.
// Unit files are pure and run two at a time, first. The v2 VM boots when the
// run starts (its project's globalSetup, test/v2/vm.ts) and runs beside the
// other files; the files that measure CPU or I/O
// (describeMeasuring in test/helpers.ts) wait for it to end, and the sequencer
// runs them after the others and the v2 file, which reads the VM's outcome, last.
const UNIT = ['test/unit/**/*.test.ts'];
const KERNEL = ['test/kernel', 'test/runtime', 'test/security', 'test/isolation', 'test/net', 'test/image'].map((d) => `${d}/**/*.test.ts`);
const E2E = ['test/cli', 'test/api', 'test/oci', 'test/clients', 'test/bench'].map((d) => `${d}/**/*.test.ts`);
const V2 = ['test/v2/**/*.test.ts'];

/** Whether a test file measures CPU or I/O (it says so by describeMeasuring). */
const measures = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8').includes('describeMeasuring(');
  } catch {
    return false;
  }
};

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
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    sequence: { sequencer: Sequencer },
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT, fileParallelism: true, maxWorkers: 2 } },
      { extends: true, test: { name: 'kernel', include: KERNEL } },
      { extends: true, test: { name: 'e2e', include: E2E } },
      { extends: true, test: { name: 'v2', include: V2, globalSetup: ['test/v2/vm.ts'] } },
    ],
  },
});
