// Real contexts on the running kernel: lifecycle, isolation of processes,
// hostname, IPC and files, page-cache sharing, crash recovery.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';

const SYSV_IPC = path.resolve('dist/native/sysv-ipc');

/** Dead: a zombie, or reaped already (the monitor may reap between two reads of /proc). */
function dead(pid: number): boolean {
  try {
    return /\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describeReal('context lifecycle on the real kernel', () => {
  const names = ['lc-a', 'lc-b'];

  async function sh(name: string, script: string, input?: Buffer) {
    return fx.rt.execCapture(name, ['/bin/sh', '-c', script], { input, timeoutMs: 30_000 });
  }
  async function out(name: string, script: string) {
    const r = await sh(name, script);
    expect(r.stderr, script).toBe('');
    expect(r.code, script).toBe(0);
    return r.stdout.trim();
  }

  const fx = useRuntime('lifecycle', async () => {
    // memory limits: each gets a memory cgroup of its own, which the page-cache test reads
    await fx.rt.create({ name: 'lc-a', image: 'base', hostname: 'alpha', limits: { memory: 256 * 2 ** 20 } });
    await fx.rt.create({ name: 'lc-b', image: 'base', hostname: 'beta', limits: { memory: 256 * 2 ** 20 } });
    for (const n of names) await fx.rt.start(n);
  });

  it('lists both contexts as running with their xids and init pids', () => {
    const list = fx.rt.list();
    expect(list.map((s) => [s.name, s.state, s.xid])).toEqual([
      ['lc-a', 'running', 2],
      ['lc-b', 'running', 3],
    ]);
    for (const s of list) expect(fs.existsSync(`/proc/${s.pid}`)).toBe(true);
  });

  it('hides processes: ps inside lists only the context, and its init is pid 1', async () => {
    await out('lc-a', 'sleep 120 >/dev/null 2>&1 &');
    const ps = await out('lc-a', 'ps -o pid,comm');
    const rows = ps
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/));
    expect(rows[0]).toEqual(['1', 'paene-init']);
    expect(rows.map((r) => r[1])).toContain('sleep');
    // nothing of the host or of lc-b: every pid is small and ours
    const psB = await out('lc-b', 'ps -o pid,comm');
    expect(psB).not.toContain('sleep');
    expect(fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).length).toBeGreaterThan(rows.length + 5);
    // runtime views agree: in-context pid 1 is the init's host pid
    const procs = fx.rt.ps('lc-a');
    expect(procs[0].innerPid).toBe(1);
    expect(procs[0].pid).toBe(fx.rt.status('lc-a').pid);
    // the init is the small paene-init, not a copy of the monitor: a few pages resident
    const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${procs[0].pid}/status`, 'utf8'))?.[1]);
    expect(rssKb).toBeLessThan(64);
    const all = fx.rt.psAll();
    expect(all.filter((p) => p.context === 'lc-a').length).toBe(procs.length);
    expect(all.find((p) => p.pid === process.pid)?.xid).toBe(0);
  });

  it('gives each context its own hostname', async () => {
    expect(await out('lc-a', 'hostname')).toBe('alpha');
    expect(await out('lc-b', 'hostname')).toBe('beta');
    expect(fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim()).not.toMatch(/^(alpha|beta)$/);
  });

  it('lets two contexts use the same SysV IPC keys without conflict', async () => {
    const tool = fs.readFileSync(SYSV_IPC);
    for (const n of names) {
      const r = await sh(n, 'cat > /tmp/sysv-ipc && chmod 755 /tmp/sysv-ipc', tool);
      expect(r.code).toBe(0);
      expect(await out(n, `/tmp/sysv-ipc create 0x5eed value-${n}`)).toMatch(/^created key=0x5eed/);
    }
    for (const n of names) {
      expect(await out(n, '/tmp/sysv-ipc read 0x5eed')).toBe(`read key=0x5eed shm=value-${n} sem=1 msg=value-${n}`);
      const segs = (await out(n, 'ipcs -m')).split('\n').filter((l) => l.startsWith('0x'));
      expect(segs.length).toBe(1);
    }
    // the host's IPC namespace has none of them
    const hostIpcs = execFileSync('ipcs', ['-m'], { encoding: 'utf8' });
    expect(hostIpcs).not.toMatch(/0x00005eed/);
  });

  it('keeps writes copy-on-write: private to the context, never in the image', async () => {
    await out('lc-a', 'echo mine > /etc/motd-test && echo changed >> /etc/passwd');
    expect(await out('lc-a', 'cat /etc/motd-test')).toBe('mine');
    const r = await sh('lc-b', 'cat /etc/motd-test');
    expect(r.code).not.toBe(0);
    expect(await out('lc-b', 'tail -n 1 /etc/passwd')).not.toBe('changed');
    expect(fs.existsSync(path.join(fx.rt.layout.upperDir('lc-a'), 'etc/motd-test'))).toBe(true);
    expect(fs.existsSync(path.join(fx.rt.layout.upperDir('lc-b'), 'etc/motd-test'))).toBe(false);
    // the image's /etc/passwd is untouched
    const lower = fs.readdirSync(path.join(fx.root, 'images'), { recursive: true }) as string[];
    expect(lower.some((p) => p.endsWith('motd-test'))).toBe(false);
  });

  it('shares the page cache of unmodified image files between contexts', async () => {
    const cgB = fx.rt.cgroupOf('lc-b');
    // Control: a file only lc-b has is charged to lc-b, so the counter can see it.
    const before0 = cgB.pageCacheBytes();
    await out('lc-b', 'dd if=/dev/zero of=/root/private bs=1024 count=4096 2>/dev/null');
    const privateCharge = cgB.pageCacheBytes() - before0;
    expect(privateCharge).toBeGreaterThan(3 * 1024 * 1024);
    // The shared file: lc-a reads it first, then lc-b reads it and is charged (almost) nothing.
    const size = Number(await out('lc-a', 'stat -c %s /bin/busybox'));
    expect(size).toBeGreaterThan(1024 * 1024);
    await out('lc-a', 'cat /bin/busybox > /dev/null');
    const before = cgB.pageCacheBytes();
    await out('lc-b', 'cat /bin/busybox > /dev/null');
    const sharedCharge = cgB.pageCacheBytes() - before;
    expect(sharedCharge).toBeLessThan(size / 8);
  });

  it('keeps the host tree and the host /proc out of reach', async () => {
    const marker = path.join(fx.root, 'host-marker');
    fs.writeFileSync(marker, 'host');
    const r = await sh('lc-a', `cat ${marker}`);
    expect(r.code).not.toBe(0);
    expect(await out('lc-a', `ls /proc | grep -c '^[0-9]'`)).toMatch(/^[1-9]$/);
    expect(await out('lc-a', 'cat /proc/1/cmdline | tr "\\0" " "').then((s) => s.trim())).toBe('paene-init');
    // its root is its own tree's (/proc/1/root itself is EACCES in --net shared: each exec is a Landlock domain of its own)
    expect(await out('lc-a', 'readlink /proc/self/root')).toBe('/');
    // no trace of a host path in the init's environment (read from the host: in --net shared an exec session
    // is a Landlock domain of its own and may not read the init's environ at all)
    const initPid = fx.rt.status('lc-a').pid as number;
    expect(fs.readFileSync(`/proc/${initPid}/environ`, 'utf8')).not.toContain(fx.root);
    const inside = await sh('lc-a', 'cat /proc/1/environ');
    expect(inside.code === 0 ? inside.stdout : inside.stderr).not.toContain(fx.root);
    // /proc/sys is read-only and kernel memory is masked
    expect((await sh('lc-a', 'echo 1 > /proc/sys/kernel/ns_last_pid')).code).not.toBe(0);
    // masked: whichever of these this kernel has reads as empty inside (the host's are not)
    const masked = ['/proc/kallsyms', '/proc/keys', '/proc/timer_list', '/proc/kcore', '/proc/sched_debug'].filter((p) => fs.existsSync(p));
    expect(masked.length).toBeGreaterThan(0);
    expect(fs.readFileSync('/proc/kallsyms').length).toBeGreaterThan(0);
    for (const p of masked) expect(await out('lc-a', `cat ${p} | wc -c`), p).toBe('0');
    // masked directories are empty and read-only
    expect(await out('lc-a', 'ls -A /sys/firmware | wc -l')).toBe('0');
    expect((await sh('lc-a', 'touch /sys/firmware/x')).code).not.toBe(0);
    // /tmp and /dev/shm are the context's own: lc-b sees nothing of lc-a's
    await out('lc-a', 'echo a > /tmp/only-a && echo a > /dev/shm/only-a');
    expect((await sh('lc-b', 'cat /tmp/only-a')).code).not.toBe(0);
    expect((await sh('lc-b', 'cat /dev/shm/only-a')).code).not.toBe(0);
    expect(await out('lc-a', 'cat /tmp/only-a /dev/shm/only-a')).toBe('a\na');
    // /dev is minimal
    expect((await out('lc-a', 'ls /dev')).split('\n').sort()).toEqual(
      ['fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'].sort(),
    );
  });

  it('passes stdin, stdout, stderr and the exit code through exec', async () => {
    const r = await fx.rt.execCapture('lc-a', ['/bin/sh', '-c', 'read x; echo "got $x"; echo oops >&2; exit 7'], { input: 'hello\n' });
    expect(r).toEqual({ code: 7, stdout: 'got hello\n', stderr: 'oops\n' });
    const missing = await fx.rt.execCapture('lc-a', ['/no/such/program']);
    expect(missing.code).toBe(127);
  });

  it('stops and starts again, keeping its private files', async () => {
    await fx.rt.stop('lc-a');
    expect(fx.rt.status('lc-a').state).toBe('stopped');
    expect(fx.rt.cgroupOf('lc-a').exists()).toBe(false);
    await expect(fx.rt.execCapture('lc-a', ['true'])).rejects.toThrow(/not running/);
    await fx.rt.start('lc-a');
    expect(await out('lc-a', 'cat /etc/motd-test')).toBe('mine');
    // /tmp, as a tmpfs would, starts empty again
    expect((await sh('lc-a', 'cat /tmp/only-a')).code).not.toBe(0);
    await expect(fx.rt.start('lc-a')).rejects.toThrow(/already running/);
  });

  it('recovers from a crash: init killed from the host shows as stopped and starts again', async () => {
    await out('lc-b', 'sleep 120 >/dev/null 2>&1 &');
    const pid = fx.rt.status('lc-b').pid as number;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && !dead(pid); i++) await new Promise((r) => setTimeout(r, 10));
    expect(fx.rt.status('lc-b').state).toBe('stopped');
    await fx.rt.start('lc-b');
    expect(fx.rt.status('lc-b').state).toBe('running');
    expect(await out('lc-b', 'hostname')).toBe('beta');
    // a leftover cgroup from the crash was cleaned: only the new init and our exec remain
    expect(fx.rt.ps('lc-b').length).toBe(1);
  });

  it('recovers from a crash mid-start: an init with no recorded state is cleaned by the next start', async () => {
    // Simulate a CLI killed after the init was forked but before state.json was written.
    const before = fx.rt.status('lc-b');
    fs.rmSync(fx.rt.layout.stateFile('lc-b'));
    expect(fx.rt.status('lc-b').state).toBe('stopped');
    await fx.rt.start('lc-b');
    const after = fx.rt.status('lc-b');
    expect(after.state).toBe('running');
    expect(after.pid).not.toBe(before.pid);
    // the orphaned init of the "crashed" start is gone, and only the new one remains
    expect(dead(before.pid as number)).toBe(true);
    expect(fx.rt.ps('lc-b').map((p) => p.pid)).toEqual([after.pid]);
  });

  it('destroy removes the cgroups, the private layer and the config', async () => {
    await fx.rt.create({ name: 'lc-c', image: 'base' });
    await fx.rt.start('lc-c');
    const cgDirs = fx.rt.cgroupOf('lc-c').dirs();
    await fx.rt.destroy('lc-c');
    for (const d of cgDirs) expect(fs.existsSync(d)).toBe(false);
    expect(fs.existsSync(fx.rt.layout.contextDir('lc-c'))).toBe(false);
    expect(fx.rt.list().map((s) => s.name)).not.toContain('lc-c');
  });
});
