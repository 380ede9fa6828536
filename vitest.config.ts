import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native work is multithreaded already; two cores do not gain from parallel files.
    fileParallelism: false,
    reporters: ['default'],
  },
});
