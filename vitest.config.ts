import { defineConfig } from 'vitest/config';

// Three tiers (npm run test:unit | test:kernel | test:e2e; npm test runs all):
//   unit    pure code and the native programs' message round trips: no root, quick
//   kernel  real namespaces, cgroups, mounts, BPF on this kernel (root)
//   e2e     whole commands and their clients: the CLI, the API, paene-runc under
//           containerd, Docker, Podman and the CRI, the OCI conformance suite, the v2 VM
// Real-kernel tests measure CPU, memory and I/O on a shared 2-core machine:
// files run one at a time so they do not measure each other.
const UNIT = ['test/unit/**/*.test.ts'];
const KERNEL = ['test/kernel', 'test/runtime', 'test/security', 'test/isolation', 'test/net', 'test/image'].map((d) => `${d}/**/*.test.ts`);
const E2E = ['test/cli', 'test/api', 'test/oci', 'test/clients', 'test/v2', 'test/bench'].map((d) => `${d}/**/*.test.ts`);

export default defineConfig({
  test: {
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      { extends: true, test: { name: 'kernel', include: KERNEL } },
      { extends: true, test: { name: 'e2e', include: E2E } },
    ],
  },
});
