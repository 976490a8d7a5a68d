// The monitor client (kernel/helper.ts) against the real native monitor.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { Asm } from '../../src/core/ebpf.js';
import { buildSockAddr } from '../../src/core/sockaddr.js';
import { sockAddrArgs } from '../../src/kernel/bpf.js';
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

  it('keeps the last 8 program sets it loaded, not one more, and passes a refused program on with its verifier log', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-monitor-'));
    const m = new Monitor(dir);
    try {
      const pid = Number(await m.request(['ping']));
      const fds = () => fs.readdirSync(`/proc/${pid}/fd`).length;
      // A start whose cgroup is not a cgroup v2 directory: the monitor loads (or finds) the set, the handler refuses to attach.
      const start = (hostDeny: number) => {
        const w = buildSockAddr({ v4: ['127.77.1.2'], v6: [], peerNets4: ['127.77.0.0/16'], hostDeny4: [`192.0.2.${hostDeny}`], hostDeny6: [] });
        const args = sockAddrArgs(w).flatMap((a) => ['--bpf-prog', a]);
        return m.request(['start', '--bpf-cgroup', dir, ...args]).then(
          () => 'started',
          (e: Error) => e.message,
        );
      };
      const base = fds();
      expect(await start(1)).toMatch(/not a cgroup v2 directory/);
      const perSet = fds() - base; // twelve programs and two maps
      expect(perSet).toBe(14);
      expect(await start(1)).toMatch(/not a cgroup v2 directory/);
      expect(fds()).toBe(base + perSet); // the same set: not loaded again
      for (let i = 2; i <= 9; i++) expect(await start(i)).toMatch(/not a cgroup v2 directory/);
      expect(fds()).toBe(base + 8 * perSet); // nine sets asked for, eight kept
      const bad = await m
        .request(['start', '--bpf-cgroup', dir, '--bpf-prog', `10=${new Asm().ret(7).toBuffer().toString('hex')}`])
        .then(() => 'started', (e: Error) => e.message);
      expect(bad).toMatch(/connect4 \(type 10\): the kernel refused the program.*verifier log/);
      expect(await m.request(['ping'])).toBe(String(pid)); // still serving
      expect(fds()).toBe(base + 8 * perSet);
    } finally {
      await m.quit();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
