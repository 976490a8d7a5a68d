// The monitor client (kernel/helper.ts) against the real native monitor.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { Asm } from '../../src/bpf/ebpf.js';
import { buildSockAddr } from '../../src/net/sockaddr.js';
import { sockAddrArgs } from '../../src/kernel/bpf.js';
import { progArgs } from '../../src/proto/sock-attach.js';
import { Monitor } from '../../src/kernel/helper.js';
import { guardStatusRequest } from '../../src/model/forkbackoff.js';
import { FORK_BACKOFF_GUARD } from '../../src/proto/fork-backoff.js';
import { flagArgs } from '../../src/proto/tokens.js';
import { describeReal } from '../helpers.js';

/** The pids of the watchers of the monitor serving dir (its comm, and the monitor's command line it kept). */
function watchersOf(dir: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((p) => {
      try {
        return (
          fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'paene-watcher' &&
          fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)
        );
      } catch {
        return false; // gone meanwhile
      }
    });
}

/** Polls what until it holds, at most 5 s; its last answer. */
async function until(what: () => boolean): Promise<boolean> {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
  return what();
}

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
        const w = buildSockAddr({
          v4: ['127.77.1.2'],
          v6: [],
          peerNets4: ['127.77.0.0/16'],
          hostDeny4: [`192.0.2.${hostDeny}`],
          hostDeny6: [],
        });
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
        .request(['start', '--bpf-cgroup', dir, '--bpf-prog', ...progArgs([['connect4', new Asm().ret(7).toBuffer()]])])
        .then(
          () => 'started',
          (e: Error) => e.message,
        );
      expect(bad).toMatch(/connect4 \(type 10\): the kernel refused the program.*verifier log/);
      expect(await m.request(['ping'])).toBe(String(pid)); // still serving
      expect(fds()).toBe(base + 8 * perSet);
    } finally {
      await m.quit();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes its staging namespace once, holds it open, and leaves no process behind for it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-monitor-'));
    const m = new Monitor(dir);
    try {
      const pid = Number(await m.request(['ping']));
      // open_tree came with 5.2: every kernel paene runs on in practice; an older one says why it pivots.
      const [major, minor] = os.release().split('.').map(Number);
      const rs = await m.rootSwitch();
      if (major > 5 || (major === 5 && minor >= 2)) expect(rs).toEqual({ staged: true });
      else expect(rs.staged).toBe(false);
      if (!rs.staged) return;
      const mnt = fs
        .readdirSync(`/proc/${pid}/fd`)
        .map((f) => fs.readlinkSync(`/proc/${pid}/fd/${f}`))
        .filter((l) => l.startsWith('mnt:['));
      expect(mnt).toHaveLength(1);
      expect(mnt[0]).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'));
      // the process that made it was reaped (the watcher is not the monitor's child)
      expect(fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim()).toBe('');
    } finally {
      await m.quit();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the fork back-off in a watcher that is not its child and goes with it; without the watcher it guards itself', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-monitor-'));
    const m = new Monitor(dir);
    // Plain files stand in for a cgroup's pids.events and cpu quota: the back-off only reads and writes them.
    const events = path.join(dir, 'pids.events');
    const quota = path.join(dir, 'quota');
    fs.writeFileSync(events, 'max 0\n');
    fs.writeFileSync(quota, 'max\n');
    // a pid no one has (never reaped); no pressure gate
    const guard = (pid: number) =>
      m.request([
        'guard',
        ...flagArgs(FORK_BACKOFF_GUARD, [
          ['--pid', String(pid)],
          ['--events', events],
          ['--trigger', '100'],
          ['--window-ms', '1000'],
          ['--hold-ms', '60000'],
          ['--poll-ms', '1000'],
          ['--hot-ms', '20'],
          ['--gate', '0'],
          ['--write', quota, '5000'],
        ]),
      ]);
    const status = (pid: number) => m.request(guardStatusRequest(pid));
    try {
      const pid = Number(await m.request(['ping']));
      const [watcher] = watchersOf(dir);
      expect(watcher, 'a paene-watcher beside the monitor').toBeGreaterThan(0);
      const ppid = Number(fs.readFileSync(`/proc/${watcher}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      expect(ppid).not.toBe(pid); // not the monitor's child: the monitor exits when it has none

      await guard(4_000_001);
      const holders = () => fs.readdirSync(`/proc/${watcher}/fd`).map((f) => fs.readlinkSync(`/proc/${watcher}/fd/${f}`));
      expect(holders()).toContain(events); // the watcher holds the file open, not the monitor
      expect(fs.readdirSync(`/proc/${pid}/fd`).map((f) => fs.readlinkSync(`/proc/${pid}/fd/${f}`))).not.toContain(events);
      expect(await status(4_000_001)).toMatch(/^held=0 holds=0/);
      fs.writeFileSync(events, 'max 500\n'); // 500 refused forks at once: a hold
      expect(await until(() => fs.readFileSync(quota, 'utf8') === '5000')).toBe(true);
      expect(await status(4_000_001)).toMatch(/^held=1 holds=1 refusals=500/);

      // The watcher gone (ended by its pid: we started it), the monitor takes new guards itself.
      process.kill(watcher, 'SIGKILL');
      expect(await until(() => !fs.existsSync(`/proc/${watcher}`))).toBe(true);
      fs.writeFileSync(events, 'max 0\n');
      fs.writeFileSync(quota, 'max\n');
      await guard(4_000_002);
      expect(await status(4_000_002)).toMatch(/^held=0 holds=0/);
      fs.writeFileSync(events, 'max 500\n');
      expect(await until(() => fs.readFileSync(quota, 'utf8') === '5000')).toBe(true);
      expect(await status(4_000_002)).toMatch(/^held=1 holds=1/);
      expect(await m.request(['ping'])).toBe(String(pid));
    } finally {
      await m.quit();
      fs.rmSync(dir, { recursive: true, force: true });
    }

    // A fresh monitor's watcher exits with it.
    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-monitor-'));
    const m2 = new Monitor(dir2);
    try {
      const pid = Number(await m2.request(['ping']));
      const [watcher] = watchersOf(dir2);
      expect(watcher).toBeGreaterThan(0);
      await m2.quit();
      expect(await until(() => !fs.existsSync(`/proc/${pid}`) && !fs.existsSync(`/proc/${watcher}`))).toBe(true);
    } finally {
      await m2.quit();
      fs.rmSync(dir2, { recursive: true, force: true });
    }
  });
});
