// The outbound bench's fair host side: its client joins the cgroups of a
// `--net host` context, found from that context's init through
// /proc/PID/cgroup. Here: a process moved into a scratch cgroup is found
// there, and a shell that writes itself into the files found is then in the
// same cgroups as that process.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { cgroupProcsFiles } from '../../src/bench/network.js';
import { detectCgroupHost } from '../../src/cgroups/cgroups.js';
import { describeReal } from '../helpers.js';

/** Ends a child this test started (by its pid) and waits until it is gone. */
async function endChild(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((resolve) => c.once('exit', resolve));
  c.kill('SIGKILL');
  await gone;
}

describeReal('bench network: the host client joins the cgroups of a process', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await endChild(child);
    if (dir && fs.existsSync(dir)) fs.rmdirSync(dir);
    child = undefined;
    dir = undefined;
  });

  it('finds the scratch cgroup a process was moved into, and a shell joining the files shares its cgroups', async () => {
    const host = detectCgroupHost();
    const mount = host.v1.get('cpu') ?? host.unified?.mount;
    if (!mount) throw new Error('no cpu hierarchy and no cgroup2 mount');
    dir = path.join(mount, `paene-test-join-${process.pid}`);
    fs.mkdirSync(dir);
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
    const pid = child.pid as number;
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid));
    const files = cgroupProcsFiles(pid);
    expect(files).toContain(path.join(dir, 'cgroup.procs'));
    for (const f of files) expect(fs.existsSync(f), f).toBe(true);
    // the bench's prelude: write $$ into every file, then exec the client (here: print its own cgroups)
    const joined = spawnSync('sh', ['-c', `${files.map((f) => `echo $$ > '${f}' && `).join('')}exec cat /proc/self/cgroup`], {
      encoding: 'utf8',
    });
    expect(joined.status, joined.stderr).toBe(0);
    const mine = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    expect(joined.stdout).toBe(mine);
  });
});

// The outbound rows' server takes a port range (each run its own port, so no run meets an earlier one's
// TIME_WAITs) and every paene-bench call may be bound to one CPU (`--cpu N`, where the bench puts its
// clients and servers). Here, on a 127.x address of the host's loopback: one server on four ports, bound
// to CPU 0, answers a client on each of them; a bad range or CPU is refused with a sentence.
describeReal('paene-bench: tcp-serve on a port range, bound to one CPU', () => {
  const tool = path.resolve('dist/native/paene-bench');
  const addr = '127.78.0.9';
  const first = 30000 + (process.pid % 500) * 4;
  let server: ChildProcess | undefined;
  afterEach(async () => {
    await endChild(server);
    server = undefined;
  });

  it('answers on every port of the range, runs only on the CPU it was given, and refuses a bad range or CPU', async () => {
    const s = spawn(tool, ['--cpu', '0', 'tcp-serve', addr, `${first}-${first + 3}`, '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    server = s;
    await new Promise<void>((resolve, reject) => {
      s.stdout?.once('data', () => resolve());
      s.once('exit', (code) => reject(new Error(`tcp-serve exited ${code}`)));
    });
    const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${s.pid}/status`, 'utf8'))?.[1];
    expect(allowed).toBe('0');
    for (let p = first; p <= first + 3; p++) {
      const c = spawnSync(tool, ['--cpu', '0', 'tcp-crr', addr, String(p), '20'], { encoding: 'utf8', timeout: 60_000 });
      expect(c.status, `port ${p}: ${c.stderr}`).toBe(0);
      expect(c.stdout).toMatch(/^tcp-crr [0-9.]+ conn\/s$/m);
      expect(c.stdout).toContain('tcp-crr-retries 0');
    }
    // request/answer on one open connection: every request answered, the median round trip within the slowest percent
    const rr = spawnSync(tool, ['--cpu', '0', 'tcp-rr', addr, String(first), '500'], { encoding: 'utf8', timeout: 60_000 });
    expect(rr.status, rr.stderr).toBe(0);
    expect(rr.stdout).toMatch(/^tcp-rr [0-9.]+ trans\/s$/m);
    const p50 = Number(/^tcp-rr-p50 ([0-9.]+) us$/m.exec(rr.stdout)?.[1]);
    const p99 = Number(/^tcp-rr-p99 ([0-9.]+) us$/m.exec(rr.stdout)?.[1]);
    expect(p50).toBeGreaterThan(0);
    expect(p99).toBeGreaterThanOrEqual(p50);
    // and the sequential server still serves the next client after it
    const after = spawnSync(tool, ['tcp-crr', addr, String(first), '5'], { encoding: 'utf8', timeout: 60_000 });
    expect(after.status, after.stderr).toBe(0);
    const bad = spawnSync(tool, ['tcp-serve', addr, `${first}-${first + 2000}`, '1'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('PORT must be a port or FIRST-LAST (at most 1024 ports)');
    const noCpu = spawnSync(tool, ['--cpu', '4096', 'nop'], { encoding: 'utf8' });
    expect(noCpu.status).not.toBe(0);
    // not a number: refused, not read as CPU 0
    for (const cpu of ['', 'none', '1x'])
      expect(spawnSync(tool, ['--cpu', cpu, 'nop'], { encoding: 'utf8' }).status, `--cpu '${cpu}'`).toBe(2);
    // exec: a program bound to the CPU (busybox httpd in a guest without taskset), or exit 127 and why
    const pinned = spawnSync(tool, ['--cpu', '0', 'exec', '/bin/grep', 'Cpus_allowed_list', '/proc/self/status'], { encoding: 'utf8' });
    expect(pinned.stdout).toMatch(/^Cpus_allowed_list:\s+0$/m);
    const missing = spawnSync(tool, ['exec', '/nonexistent/paene-prog'], { encoding: 'utf8' });
    expect(missing.status).toBe(127);
    expect(missing.stderr).toContain('cannot execute /nonexistent/paene-prog');
  });
});
