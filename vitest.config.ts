import { defineConfig } from 'vitest/config';

// Real-kernel tests measure CPU, memory and I/O on a shared 2-core machine:
// run test files one at a time so they do not measure each other.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
