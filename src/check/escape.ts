// The escape suite and the positive (admin) suite of the split root, run
// against a real context: every escape attempt runs as guest root (or as a
// guest user) through escape-probe, is expected to fail, and must leave the
// host unchanged; every admin operation is expected to work.
// `paene check escape` and test/security/ both use this module.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { capMask } from '../model/caps.js';
import { nativePath } from '../kernel/helper.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  type AttemptResult,
  capBit,
  capsBeyond,
  describeParts,
  type EscapeVerdict,
  judgeAdmin,
  judgeEscape,
  type ProbePart,
  parseProbeLine,
  parseProbeStatus,
} from './escape-judge.js';

/** Where the probe lives inside the context (its private /tmp: nosuid, nodev). */
export const PROBE = '/tmp/.paene-escape-probe';
/** A copy outside /tmp (no nosuid there) for the setuid and file-capability attempts. */
const PROBE_ROOTFS = '/usr/local/lib/.paene-escape-probe';
const GUEST_USER = { uid: 1000, gid: 1000 };

export interface SuiteEnv {
  rt: Runtime;
  /** the context under test (running) */
  name: string;
  /** host pid of another context's init, for the cross-context attempts */
  otherInitPid?: number;
  /** a host path that does not exist inside the context: seeing it from inside = escaped */
  hostOnlyPath: string;
  /** the image's root on the host (the shared lower layer), to show that replacing a shared file leaves it alone */
  imageRootfs?: string;
}

interface Outcome {
  observed: string;
  verdict: EscapeVerdict;
}

interface HostSnapshot {
  hostname: string;
  /** wall clock minus monotonic clock, ms: changes if someone sets the clock */
  clockOffset: number;
  mounts: string[];
  sentinel: string;
}

export interface EscapeAttempt {
  id: string;
  attempt: string;
  expected: string;
  wall: string;
  /** host facts to compare before and after */
  host?: ('hostname' | 'clock' | 'mounts' | 'sentinel')[];
  run(x: AttemptContext): Promise<Outcome>;
}

export interface AdminOperation {
  id: string;
  operation: string;
  expected: string;
  run(x: AttemptContext): Promise<{ observed: string; works: boolean }>;
}

/** What an attempt can do: run the probe or a shell line in the context. */
export class AttemptContext {
  constructor(readonly env: SuiteEnv) {}

  async exec(argv: string[], user?: { uid: number; gid: number }): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.env.rt.execCapture(this.env.name, argv, { timeoutMs: 60_000, user });
  }
  async probe(args: (string | number)[], user?: { uid: number; gid: number }): Promise<ProbePart[]> {
    const r = await this.exec([PROBE, ...args.map(String)], user);
    const parts = parseProbeLine(r.stdout);
    if (parts.length === 0 && r.stderr.trim()) return [{ result: 'error', detail: r.stderr.trim().split('\n').at(-1) as string }];
    return parts;
  }
  async sh(script: string, user?: { uid: number; gid: number }): Promise<{ code: number; out: string }> {
    const r = await this.exec(['/bin/sh', '-c', script], user);
    return { code: r.code, out: (r.stdout + r.stderr).trim() };
  }
  get mask(): bigint {
    return capMask(this.env.rt.config(this.env.name).caps);
  }
}

/** The common case: one or more probe calls, judged together. */
function probeAttempt(
  a: Omit<EscapeAttempt, 'run'> & {
    calls: (x: AttemptContext) => (string | number)[][];
    blockedBy: string[];
    unprovable?: string[];
    user?: { uid: number; gid: number };
    /** a host file whose absence makes the attempt prove nothing (e.g. /proc/kcore on a kernel without it) */
    needsHost?: string;
  },
): EscapeAttempt {
  return {
    ...a,
    async run(x) {
      const parts: ProbePart[] = [];
      for (const c of a.calls(x)) parts.push(...(await x.probe(c, a.user)));
      let verdict = judgeEscape(parts, { blockedBy: a.blockedBy, unprovable: a.unprovable });
      let observed = describeParts(parts);
      if (a.needsHost && !fs.existsSync(a.needsHost) && verdict === 'blocked') {
        verdict = 'not provable here';
        observed += ` (${a.needsHost} does not exist on this kernel)`;
      }
      return { observed, verdict };
    },
  };
}

/** A shell line in the context: exit status 0 = the forbidden thing worked. */
function shellAttempt(a: Omit<EscapeAttempt, 'run'> & { script: string; blockedIf: RegExp; unprovableIf?: RegExp }): EscapeAttempt {
  return {
    ...a,
    async run(x) {
      const r = await x.sh(a.script);
      const observed = `exit ${r.code}: ${r.out.split('\n').at(-1) ?? ''}`.trim();
      if (r.code === 0) return { observed, verdict: 'ESCAPED' };
      if (a.unprovableIf?.test(r.out)) return { observed, verdict: 'not provable here' };
      return { observed, verdict: a.blockedIf.test(r.out) ? 'blocked' : 'inconclusive' };
    },
  };
}

const EPERM = ['EPERM'];

export const ESCAPE_ATTEMPTS: readonly EscapeAttempt[] = [
  // ---- mounts and the root
  probeAttempt({
    id: 'mount-tmpfs',
    attempt: 'mount a tmpfs',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN; seccomp mount',
    calls: () => [['mount', 'tmpfs', '/tmp/.m', 'tmpfs', 'none']],
    blockedBy: EPERM,
    host: ['mounts'],
  }),
  probeAttempt({
    id: 'mount-bind-root',
    attempt: 'bind-mount / elsewhere',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN; seccomp mount',
    calls: () => [['mount', '/', '/tmp/.m', '-', 'rbind']],
    blockedBy: EPERM,
    host: ['mounts'],
  }),
  probeAttempt({
    id: 'remount-proc-rw',
    attempt: 'remount /proc and /proc/sys read-write',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN; seccomp mount',
    calls: () => [
      ['mount', '-', '/proc', '-', 'remount-rw'],
      ['mount', '-', '/proc/sys', '-', 'remount-bind-rw'],
    ],
    blockedBy: EPERM,
    host: ['mounts'],
  }),
  probeAttempt({
    id: 'umount-mask',
    attempt: 'unmount a mask (/proc/keys)',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN; seccomp umount2',
    calls: () => [['umount', '/proc/keys']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'mount-cgroupfs',
    attempt: 'mount the cgroup v1 and v2 filesystems (reach the host cgroup tree)',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN; seccomp mount; cgroup namespace',
    calls: () => [
      ['mount', 'cgroup', '/tmp/.cg', 'cgroup', 'none', 'pids'],
      ['mount', 'cgroup2', '/tmp/.cg2', 'cgroup2', 'none'],
    ],
    blockedBy: EPERM,
    host: ['mounts'],
  }),
  probeAttempt({
    id: 'cgroup-files',
    attempt: "write the context's own cgroup files (/sys/fs/cgroup)",
    expected: 'EROFS or ENOENT',
    wall: 'no cgroupfs in the guest; /sys read-only',
    calls: () => [
      ['open-write', '/sys/fs/cgroup/pids/pids.max'],
      ['open-write', '/sys/fs/cgroup/cgroup.procs'],
    ],
    blockedBy: ['EROFS', 'ENOENT', 'EACCES'],
  }),
  probeAttempt({
    id: 'chroot-fchdir',
    attempt: 'chroot + fchdir + chdir("..") break-out',
    expected: 'stays in the context root',
    wall: "the root is its namespace's topmost mount, every mount beneath stacked root on root, no host mount in the namespace",
    calls: (x) => [['chroot-breakout', x.env.hostOnlyPath]],
    blockedBy: ['contained', 'EPERM'],
    host: ['sentinel'],
  }),
  probeAttempt({
    id: 'pivot-root',
    attempt: 'pivot_root',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN; seccomp pivot_root',
    calls: () => [['pivot-root']],
    blockedBy: EPERM,
    host: ['mounts'],
  }),
  probeAttempt({
    id: 'proc1-root',
    attempt: '/proc/1/root to a host path',
    expected: 'ENOENT (pid 1 is the context init)',
    wall: 'pid namespace; a root with no host mount beneath; in --net shared also Landlock (each exec is a domain of its own: EACCES)',
    calls: (x) => [['proc1-root', x.env.hostOnlyPath]],
    blockedBy: ['contained', 'EACCES'],
  }),
  probeAttempt({
    id: 'proc1-exe-write',
    attempt: 'open the runtime helper for writing via /proc/1/exe',
    expected: 'EACCES',
    wall: 'the init and every entering process run from a sealed in-memory copy (never the host file), non-dumpable until their exec',
    calls: () => [
      ['open-write', '/proc/1/exe'],
      ['open-write', '/proc/self/exe'],
    ],
    blockedBy: ['ETXTBSY', 'EACCES', 'EPERM'],
  }),
  // ---- devices
  probeAttempt({
    id: 'mknod-block',
    attempt: 'mknod a block device (254:0, the host disk)',
    expected: 'EPERM',
    wall: 'no MKNOD; devices cgroup',
    calls: () => [
      ['mknod', '/dev/.b', 'b', 254, 0],
      ['mknod', '/tmp/.b', 'b', 254, 0],
    ],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'mknod-char',
    attempt: 'mknod a char device (1:1, /dev/mem)',
    expected: 'EPERM',
    wall: 'no MKNOD; devices cgroup',
    calls: () => [['mknod', '/dev/.c', 'c', 1, 1]],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'open-host-blockdev',
    attempt: 'open every host block device listed in /sys/dev/block (and any in /dev)',
    expected: 'EPERM',
    wall: 'no MKNOD; no block nodes in /dev; devices cgroup',
    calls: () => [['open-blockdevs']],
    blockedBy: EPERM,
    // a host with no block device at all (a VM on a 9p root) has nothing to try
    unprovable: ['none'],
  }),
  probeAttempt({
    id: 'dev-mem',
    attempt: 'read /dev/mem',
    expected: 'ENOENT',
    wall: 'not in /dev; no MKNOD; devices cgroup; no SYS_RAWIO',
    calls: () => [
      ['read', '/dev/mem'],
      ['read', '/dev/kmem'],
    ],
    blockedBy: ['ENOENT'],
  }),
  probeAttempt({
    id: 'proc-kcore',
    attempt: 'read /proc/kcore',
    expected: 'masked',
    wall: 'masked path',
    calls: () => [['read', '/proc/kcore']],
    blockedBy: ['masked', 'empty', 'ENOENT'],
    needsHost: '/proc/kcore',
  }),
  probeAttempt({
    id: 'proc-kallsyms',
    attempt: 'read /proc/kallsyms and /proc/keys',
    expected: 'masked',
    wall: 'masked paths',
    calls: () => [
      ['read', '/proc/kallsyms'],
      ['read', '/proc/keys'],
    ],
    blockedBy: ['masked', 'empty'],
  }),
  // ---- kernel-wide state
  probeAttempt({
    id: 'modules',
    attempt: 'init_module / finit_module',
    expected: 'EPERM (ENOSYS would prove nothing)',
    wall: 'no SYS_MODULE; seccomp',
    calls: () => [['modules']],
    blockedBy: EPERM,
    unprovable: ['ENOSYS'],
  }),
  shellAttempt({
    id: 'insmod',
    attempt: 'insmod (busybox) of a module file',
    expected: 'fails',
    wall: 'no SYS_MODULE; seccomp',
    script: 'printf "\\177ELF" > /tmp/.x.ko; busybox insmod /tmp/.x.ko',
    blockedIf: /not permitted/i,
    unprovableIf: /not implemented/i,
  }),
  probeAttempt({
    id: 'reboot',
    attempt: 'reboot(CAD_OFF)',
    expected: 'EPERM',
    wall: 'no SYS_BOOT; seccomp',
    calls: () => [['reboot']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'clock',
    attempt: 'settimeofday / clock_settime (to the current time)',
    expected: 'EPERM',
    wall: 'no SYS_TIME; seccomp',
    calls: () => [['clock']],
    blockedBy: EPERM,
    host: ['clock'],
  }),
  shellAttempt({
    id: 'date-s',
    attempt: 'date -s (to the current time)',
    expected: 'fails',
    wall: 'no SYS_TIME; seccomp',
    script: 'date -s "@$(date +%s)"',
    blockedIf: /not permitted/i,
    host: ['clock'],
  }),
  shellAttempt({
    id: 'hostname-cmd',
    attempt: 'hostname(1) without the ccap',
    expected: 'fails',
    wall: 'no SYS_ADMIN',
    script: 'busybox hostname escaped',
    blockedIf: /not permitted|must be root/i,
    host: ['hostname'],
  }),
  probeAttempt({
    id: 'sethostname',
    attempt: 'sethostname without the SET_UTSNAME ccap',
    expected: 'EPERM',
    wall: 'no SYS_ADMIN',
    calls: () => [['sethostname']],
    blockedBy: EPERM,
    host: ['hostname'],
  }),
  probeAttempt({
    id: 'proc-hostname',
    attempt: 'write /proc/sys/kernel/hostname without the ccap',
    expected: 'EROFS',
    wall: 'read-only /proc/sys',
    calls: () => [['open-write', '/proc/sys/kernel/hostname']],
    blockedBy: ['EROFS'],
    host: ['hostname'],
  }),
  probeAttempt({
    id: 'rlimit-nofile',
    attempt: 'raise the RLIMIT_NOFILE hard limit',
    expected: 'EPERM',
    wall: 'no SYS_RESOURCE',
    calls: () => [['rlimit']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'nice-negative',
    attempt: 'negative nice (raise priority)',
    expected: 'EPERM',
    wall: 'no SYS_NICE',
    calls: () => [['nice', -5]],
    blockedBy: ['EPERM', 'EACCES'],
  }),
  probeAttempt({
    id: 'iopl',
    attempt: 'iopl(3) / ioperm',
    expected: 'EPERM',
    wall: 'no SYS_RAWIO; seccomp',
    calls: () => [['iopl']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'proc-sys-write',
    attempt: 'open global sysctls for writing (vm.swappiness, kernel.core_pattern)',
    expected: 'EROFS',
    wall: 'read-only /proc/sys',
    calls: () => [
      ['open-write', '/proc/sys/vm/swappiness'],
      ['open-write', '/proc/sys/kernel/core_pattern'],
    ],
    blockedBy: ['EROFS'],
  }),
  probeAttempt({
    id: 'sysrq-trigger',
    attempt: 'open /proc/sysrq-trigger for writing',
    expected: 'masked',
    wall: 'masked path',
    calls: () => [['open-write', '/proc/sysrq-trigger']],
    blockedBy: ['masked', 'ENOENT', 'EROFS'],
    needsHost: '/proc/sysrq-trigger',
  }),
  probeAttempt({
    id: 'sys-write',
    attempt: 'open /sys files for writing (THP, block queue)',
    expected: 'EROFS',
    wall: 'read-only /sys',
    calls: () => [
      ['open-write', '/sys/kernel/mm/transparent_hugepage/enabled'],
      ['open-write', '/sys/block/vda/queue/read_ahead_kb'],
    ],
    blockedBy: ['EROFS', 'ENOENT'],
  }),
  // ---- other processes
  probeAttempt({
    id: 'kill-host-process',
    attempt: 'kill(0) / ptrace a host process by pid (the checker itself)',
    expected: 'ESRCH',
    wall: 'pid namespace',
    calls: () => [
      ['kill', process.pid],
      ['ptrace', process.pid],
    ],
    blockedBy: ['ESRCH'],
  }),
  probeAttempt({
    id: 'kill-other-context',
    attempt: "kill(0) / ptrace another context's init by its host pid",
    expected: 'ESRCH',
    wall: 'pid namespace',
    calls: (x) =>
      x.env.otherInitPid
        ? [
            ['kill', x.env.otherInitPid],
            ['ptrace', x.env.otherInitPid],
          ]
        : [['kill', 999_999]],
    blockedBy: ['ESRCH'],
  }),
  probeAttempt({
    id: 'kill-scan',
    attempt: 'kill(0) every pid up to pid_max: any outside the context?',
    expected: 'only its own',
    wall: 'pid namespace',
    calls: () => [['kill-scan', Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'))]],
    blockedBy: ['contained'],
  }),
  {
    id: 'host-pid1',
    attempt: "signal the host's pid 1",
    expected: 'pid 1 is the context init',
    wall: 'pid namespace',
    async run(x) {
      const r = await x.sh(`${PROBE} kill 1 0; cat /proc/1/comm`);
      const [line, comm] = r.out.split('\n');
      const observed = `${line}; pid 1 is ${comm}`;
      return { observed, verdict: comm === 'paene-init' ? 'blocked' : 'inconclusive' };
    },
  },
  probeAttempt({
    id: 'setns',
    attempt: "join namespaces via /proc/*/ns (own init's, another context's)",
    expected: 'EPERM / ENOENT',
    wall: 'seccomp setns; pid namespace hides other inits; in --net shared also Landlock (EACCES)',
    calls: (x) => [
      ['setns', '/proc/1/ns/mnt'],
      ['setns', `/proc/${x.env.otherInitPid ?? 999_999}/ns/mnt`],
    ],
    blockedBy: ['EPERM', 'ENOENT', 'EACCES'],
  }),
  // ---- kernel interfaces without a capability check
  probeAttempt({
    id: 'raw-socket',
    attempt: 'raw ICMP and packet sockets (no RAW_ICMP ccap)',
    expected: 'EPERM',
    wall: 'no NET_RAW',
    calls: () => [['raw']],
    blockedBy: ['EPERM', 'EACCES'],
  }),
  probeAttempt({
    id: 'keyctl',
    attempt: 'keyctl / add_key on the host user keyring',
    expected: 'EPERM',
    wall: 'seccomp keyctl, add_key',
    calls: () => [['keyctl']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'bpf',
    attempt: 'bpf(BPF_MAP_CREATE)',
    expected: 'EPERM',
    wall: 'no BPF; seccomp',
    calls: () => [['bpf']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'perf',
    attempt: 'perf_event_open on all processes of cpu 0',
    expected: 'EPERM',
    wall: 'no PERFMON; seccomp',
    calls: () => [['perf']],
    blockedBy: ['EPERM', 'EACCES'],
  }),
  probeAttempt({
    id: 'shocker',
    attempt: "open_by_handle_at with a guessed inode-2 handle ('shocker')",
    expected: 'EPERM',
    wall: 'seccomp open_by_handle_at',
    calls: () => [['shocker']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'tiocsti',
    attempt: 'TIOCSTI into a controlling terminal',
    expected: 'ENXIO (no controlling tty)',
    wall: 'new session for every exec',
    calls: () => [['tiocsti']],
    blockedBy: ['ENXIO'],
  }),
  // ---- getting the capabilities back
  probeAttempt({
    id: 'userns-unshare',
    attempt: 'unshare(CLONE_NEWUSER), then mount over the guest root',
    expected: 'EPERM',
    wall: 'seccomp (CLONE_NEWUSER)',
    calls: () => [['userns']],
    blockedBy: EPERM,
    host: ['mounts'],
  }),
  shellAttempt({
    id: 'unshare-cmd',
    attempt: 'unshare -U -r -m, then mount a tmpfs over /',
    expected: 'fails',
    wall: 'seccomp (CLONE_NEWUSER)',
    script: 'busybox unshare -U -r -m busybox mount -t tmpfs paene-escape /',
    blockedIf: /not permitted/i,
    host: ['mounts'],
  }),
  probeAttempt({
    id: 'userns-clone',
    attempt: 'clone(CLONE_NEWUSER)',
    expected: 'EPERM',
    wall: 'seccomp (CLONE_NEWUSER)',
    calls: () => [['clone-userns']],
    blockedBy: EPERM,
  }),
  probeAttempt({
    id: 'userns-clone3',
    attempt: 'clone3(CLONE_NEWUSER)',
    expected: 'ENOSYS (clone3 refused as a whole)',
    wall: 'seccomp (clone3)',
    calls: () => [['clone3-userns']],
    blockedBy: ['ENOSYS'],
  }),
  probeAttempt({
    id: 'userns-as-user',
    attempt: 'a guest user (uid 1000) creates a user namespace',
    expected: 'EPERM',
    wall: 'seccomp (CLONE_NEWUSER)',
    calls: () => [['userns'], ['clone-userns']],
    user: GUEST_USER,
    blockedBy: EPERM,
  }),
  {
    id: 'file-cap-sys-admin',
    attempt: 'set CAP_SYS_ADMIN as a file capability (security.capability) and exec it, as root and as uid 1000',
    expected: 'no SYS_ADMIN after exec',
    wall: 'bounding set',
    async run(x) {
      const f = `${PROBE_ROOTFS}-fcap`;
      const set = parseProbeLine((await x.sh(`cp ${PROBE} ${f} && chmod 755 ${f} && ${PROBE} setfcap ${f} 21`)).out);
      if (set[0]?.result !== 'ok')
        return { observed: `setxattr: ${describeParts(set)}`, verdict: set[0]?.result === 'EPERM' ? 'blocked' : 'inconclusive' };
      const parts: string[] = [];
      let escaped = false;
      for (const user of [undefined, GUEST_USER]) {
        const r = await x.exec([f, 'status'], user);
        const st = parseProbeStatus(r.stdout);
        const who = user ? 'uid 1000' : 'root';
        if (!st) parts.push(`${who}: exec failed (${r.stderr.trim().split('\n').at(-1) ?? r.code})`);
        else {
          const gained = capsBeyond(st.eff | st.prm, user ? 0n : x.mask);
          if ((st.eff | st.prm) & capBit('SYS_ADMIN') || gained.length) escaped = true;
          parts.push(`${who}: CapEff=${st.eff.toString(16)}${gained.length ? ` GAINED ${gained.join(',')}` : ', no SYS_ADMIN'}`);
        }
      }
      await x.sh(`rm -f ${f}`);
      return { observed: `setxattr ok; ${parts.join('; ')}`, verdict: escaped ? 'ESCAPED' : 'blocked' };
    },
  },
  {
    id: 'setuid-shell',
    attempt: 'a setuid-root copy of a shell (and of the probe) run by a guest user (uid 1000)',
    expected: 'at most guest root: no capability beyond the profile',
    wall: "bounding set (empty for guest users' processes)",
    async run(x) {
      const sh = `${PROBE_ROOTFS}-suid-sh`;
      const pr = `${PROBE_ROOTFS}-suid`;
      const prep = await x.sh(`cp /bin/sh ${sh} && cp ${PROBE} ${pr} && chown 0:0 ${sh} ${pr} && chmod 4755 ${sh} ${pr}`);
      if (prep.code !== 0) return { observed: `setup: ${prep.out}`, verdict: 'inconclusive' };
      const a = await x.exec([pr, 'status'], GUEST_USER);
      const b = await x.exec([sh, '-p', '-c', `${PROBE} status`], GUEST_USER);
      await x.sh(`rm -f ${sh} ${pr}`);
      const out: string[] = [];
      let escaped = false;
      let seen = 0;
      for (const [what, r] of [
        ['setuid probe', a],
        ['setuid sh -p', b],
      ] as const) {
        const st = parseProbeStatus(r.stdout);
        if (!st) {
          out.push(`${what}: ${r.stderr.trim() || r.code}`);
          continue;
        }
        seen++;
        const beyond = capsBeyond(st.eff | st.prm | st.bnd, x.mask);
        if (beyond.length) escaped = true;
        out.push(
          `${what}: euid ${st.euid}, CapEff=${st.eff.toString(16)} CapBnd=${st.bnd.toString(16)}${beyond.length ? ` BEYOND ${beyond.join(',')}` : ''}`,
        );
      }
      return { observed: out.join('; '), verdict: escaped ? 'ESCAPED' : seen > 0 ? 'blocked' : 'inconclusive' };
    },
  },
  {
    id: 'exec-caps',
    attempt: 'a fresh exec holds more than the profile (any of the five sets)',
    expected: 'exactly the profile mask',
    wall: 'bounding set, capset, ambient set',
    async run(x) {
      const r = await x.sh('grep ^Cap /proc/self/status /proc/1/status');
      const lines = r.out.split('\n');
      const beyond = new Set<string>();
      for (const l of lines) {
        const m = /(Cap\w+):\s*([0-9a-f]+)/.exec(l);
        if (m) for (const c of capsBeyond(BigInt(`0x${m[2]}`), x.mask)) beyond.add(c);
      }
      return {
        observed: beyond.size ? `beyond the profile: ${[...beyond].join(',')}` : `all sets of init and exec within ${x.mask.toString(16)}`,
        verdict: lines.length < 10 ? 'inconclusive' : beyond.size ? 'ESCAPED' : 'blocked',
      };
    },
  },
];

// ---------------------------------------------------------------------------
// The positive suite: what guest root must still be able to do.

function adminProbe(
  id: string,
  operation: string,
  expected: string,
  calls: (string | number)[][],
  user?: { uid: number; gid: number },
): AdminOperation {
  return {
    id,
    operation,
    expected,
    async run(x) {
      const parts: ProbePart[] = [];
      for (const c of calls) parts.push(...(await x.probe(c, user)));
      return { observed: describeParts(parts), works: judgeAdmin(parts) === 'works' };
    },
  };
}

function adminShell(id: string, operation: string, expected: string, script: string, want: RegExp): AdminOperation {
  return {
    id,
    operation,
    expected,
    async run(x) {
      const r = await x.sh(script);
      const last = r.out.split('\n').at(-1) ?? '';
      return { observed: `exit ${r.code}: ${last}`.trim(), works: r.code === 0 && want.test(r.out) };
    },
  };
}

export const ADMIN_OPERATIONS: readonly AdminOperation[] = [
  adminShell(
    'chown-chmod',
    'chown and chmod a file to another user',
    '1000:1000 600',
    'f=/root/.paene-own; echo x > $f && chown 1000:1000 $f && chmod 600 $f && stat -c "%u:%g %a" $f && rm $f',
    /^1000:1000 600$/m,
  ),
  adminShell(
    'dac-override',
    "read and write another user's private file (DAC_OVERRIDE)",
    'ok',
    'f=/root/.paene-dac; echo secret > $f && chown 1000:1000 $f && chmod 600 $f && echo more >> $f && cat $f >/dev/null && rm $f && echo ok',
    /^ok$/m,
  ),
  adminProbe('setuid-setgid', 'setgid/setuid to another user', 'ok uid=1000 gid=1000', [['setuid', 1000, 1000]]),
  adminProbe('bind-low-port', 'bind and listen on a port < 1024 on 127.0.0.1 (80, or the next free one)', 'ok', [['bind-low', 80]]),
  adminShell('kill-own', 'kill its own processes', 'killed', 'sleep 60 & p=$!; kill $p && wait $p; echo killed', /^killed$/m),
  adminShell('ptrace-own', 'ptrace its own processes', 'ok attached', `sleep 60 & p=$!; ${PROBE} ptrace $p; kill $p`, /^ok attached/m),
  adminShell(
    'chroot-inside',
    'chroot into a directory of its own root',
    'ok',
    `rm -rf /tmp/.jail && mkdir /tmp/.jail && cp ${PROBE} /tmp/.jail/probe && busybox chroot /tmp/.jail /probe true; rm -rf /tmp/.jail`,
    /^ok$/m,
  ),
  adminProbe('mknod-fifo', 'mknod a fifo', 'ok', [['mknod', '/tmp/.fifo', 'p', 0, 0]]),
  adminShell(
    'renice-lower',
    'renice its own process to a lower priority (+5)',
    'nice 5',
    'sleep 60 & p=$!; busybox renice -n 5 -p $p >/dev/null && cut -d" " -f19 /proc/$p/stat; kill $p',
    /^\s*5\s*$/m,
  ),
  adminShell(
    'write-anywhere',
    'write in /etc, /usr/bin, /var, / of its own root',
    'ok',
    'for d in /etc /usr/bin /var /; do echo x > $d/.paene-w || exit 1; rm $d/.paene-w || exit 1; done; echo ok',
    /^ok$/m,
  ),
  {
    id: 'replace-shared-file',
    operation: 'package-manager unlink-and-replace of shared image files (/etc/passwd, /bin/ls)',
    expected: 'ok; the shared image copy unchanged',
    async run(x) {
      const img = x.env.imageRootfs;
      const digest = (rel: string) =>
        img && fs.existsSync(path.join(img, rel)) ? fs.readFileSync(path.join(img, rel)).toString('base64') : undefined;
      const before = ['etc/passwd', 'bin/ls'].map(digest);
      const r = await x.sh(
        'cp -p /etc/passwd /etc/passwd.dpkg-new && mv /etc/passwd.dpkg-new /etc/passwd && ' +
          'cp -p /bin/ls /bin/ls.dpkg-new && rm /bin/ls && mv /bin/ls.dpkg-new /bin/ls && /bin/ls / >/dev/null && ' +
          'echo "# paene check escape" > /etc/.paene-new && mv /etc/.paene-new /etc/.paene-new2 && rm /etc/.paene-new2 && echo ok',
      );
      const after = ['etc/passwd', 'bin/ls'].map(digest);
      const imageSame = before.every((b, i) => b === after[i]);
      const note = img ? (imageSame ? 'image copy unchanged' : 'IMAGE COPY CHANGED') : 'image not checked';
      return {
        observed: `exit ${r.code}: ${r.out.split('\n').at(-1) ?? ''}; ${note}`,
        works: r.code === 0 && /^ok$/m.test(r.out) && imageSame,
      };
    },
  },
];

// ---------------------------------------------------------------------------

function snapshot(sentinelPath: string): HostSnapshot {
  return {
    hostname: os.hostname(),
    clockOffset: Date.now() - performance.now(),
    mounts: fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n'),
    sentinel: fs.existsSync(sentinelPath) ? fs.readFileSync(sentinelPath, 'utf8') : '(missing)',
  };
}

/** Host mounts that appeared and mention the context or its state root (others' contexts come and go). */
function newMounts(before: HostSnapshot, after: HostSnapshot, env: SuiteEnv): string[] {
  const old = new Set(before.mounts);
  const mark = [env.name, path.dirname(env.hostOnlyPath)];
  return after.mounts.filter((l) => !old.has(l) && (mark.some((m) => l.includes(m)) || / \/ \S+ - tmpfs /.test(l)));
}

function compareHost(
  kinds: EscapeAttempt['host'],
  before: HostSnapshot,
  after: HostSnapshot,
  env: SuiteEnv,
): { host: string; changed: boolean } {
  const notes: string[] = [];
  let changed = false;
  for (const k of kinds ?? []) {
    if (k === 'hostname') {
      const same = before.hostname === after.hostname;
      changed ||= !same;
      notes.push(same ? `hostname still ${after.hostname}` : `HOSTNAME CHANGED ${before.hostname} -> ${after.hostname}`);
    } else if (k === 'clock') {
      const drift = Math.abs(after.clockOffset - before.clockOffset);
      const same = drift < 1000;
      changed ||= !same;
      notes.push(same ? `clock unchanged (${drift.toFixed(0)} ms)` : `CLOCK MOVED ${drift.toFixed(0)} ms`);
    } else if (k === 'mounts') {
      const added = newMounts(before, after, env);
      changed ||= added.length > 0;
      notes.push(added.length ? `NEW HOST MOUNTS: ${added.join(' | ')}` : `no new host mount (${after.mounts.length})`);
    } else {
      const same = before.sentinel === after.sentinel;
      changed ||= !same;
      notes.push(same ? 'host sentinel unchanged' : 'HOST SENTINEL CHANGED');
    }
  }
  return { host: notes.join('; '), changed };
}

/** Copies the probe into the context (its /tmp, and a copy in the overlay for setuid tests). */
export async function installProbe(rt: Runtime, name: string): Promise<void> {
  const r = await rt.execCapture(
    name,
    ['/bin/sh', '-c', `cat > ${PROBE} && chmod 755 ${PROBE} && mkdir -p ${path.dirname(PROBE_ROOTFS)} && ${PROBE} true`],
    { input: fs.readFileSync(nativePath('escape-probe')), timeoutMs: 30_000 },
  );
  if (r.code !== 0 || !r.stdout.includes('ok'))
    throw new Error(`cannot install the escape probe in '${name}': ${r.stderr.trim() || r.stdout.trim()}`);
}

export async function runEscapeAttempt(env: SuiteEnv, a: EscapeAttempt, sentinelPath?: string): Promise<AttemptResult> {
  const x = new AttemptContext(env);
  const sentinel = sentinelPath ?? env.hostOnlyPath;
  const before = snapshot(sentinel);
  let out: Outcome;
  try {
    out = await a.run(x);
  } catch (e) {
    out = { observed: `error: ${e instanceof Error ? e.message : String(e)}`, verdict: 'inconclusive' };
  }
  const cmp = a.host ? compareHost(a.host, before, snapshot(sentinel), env) : undefined;
  return {
    suite: 'escape',
    id: a.id,
    attempt: a.attempt,
    expected: a.expected,
    observed: out.observed,
    verdict: out.verdict,
    wall: a.wall,
    ...(cmp ? { host: cmp.host, hostChanged: cmp.changed } : {}),
  };
}

export async function runAdminOperation(env: SuiteEnv, op: AdminOperation): Promise<AttemptResult> {
  const x = new AttemptContext(env);
  let r: { observed: string; works: boolean };
  try {
    r = await op.run(x);
  } catch (e) {
    r = { observed: `error: ${e instanceof Error ? e.message : String(e)}`, works: false };
  }
  return {
    suite: 'admin',
    id: op.id,
    attempt: op.operation,
    expected: op.expected,
    observed: r.observed,
    verdict: r.works ? 'works' : 'FAILED',
  };
}

/** Both suites in order; the host sentinel is `env.hostOnlyPath` (a file the caller created with known content). */
export async function runSuites(env: SuiteEnv, onResult?: (r: AttemptResult) => void): Promise<AttemptResult[]> {
  const out: AttemptResult[] = [];
  for (const a of ESCAPE_ATTEMPTS) {
    const r = await runEscapeAttempt(env, a);
    out.push(r);
    onResult?.(r);
  }
  for (const op of ADMIN_OPERATIONS) {
    const r = await runAdminOperation(env, op);
    out.push(r);
    onResult?.(r);
  }
  return out;
}

/** A host-only file with known content: the sentinel the attempts must not see or change. */
export function makeSentinel(dir: string): string {
  const p = path.join(dir, `escape-sentinel-${process.pid}`);
  fs.writeFileSync(p, `paene escape sentinel ${new Date().toISOString()}\n`, { mode: 0o600 });
  return p;
}
