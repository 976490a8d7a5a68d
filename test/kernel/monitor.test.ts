// The monitor client (kernel/helper.ts) against the real native monitor.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { Monitor } from '../../src/kernel/helper.js';
import { describeReal } from '../helpers.js';

describeReal('the monitor client', () => {
  it("passes the monitor's own error on at once, also right after starting it (no retries of an answer)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-monitor-'));
    const m = new Monitor(dir);
    try {
      // The first request starts the monitor; its answer must not be retried as if nobody listened.
      const first = await m.request(['frobnicate']).then(
        () => 'answered ok',
        (e: Error) => e.message,
      );
      expect(first).toMatch(/^unknown request 'frobnicate'/);
      expect(first).not.toMatch(/did not come up/);
      await expect(m.request(['frobnicate'])).rejects.toThrow(/^unknown request 'frobnicate'/);
    } finally {
      await m.quit();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
