import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ARCH_AUDIT,
  AUDIT_ARCH_I386,
  AUDIT_ARCH_X86_64,
  BPF_MAXINSNS,
  CLONE_NEWUSER,
  DEFAULT_SECCOMP_POLICY,
  ENOSYS,
  EPERM,
  SECCOMP_REASONS,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SYSCALLS,
  X32_SYSCALL_BIT,
  buildSeccompFilter,
  checkFilter,
  describeAction,
  runFilter,
  verdict,
  type Arch,
} from '../../src/seccomp/filter.js';

const prog = buildSeccompFilter();
const ARCHES: Arch[] = ['x86_64', 'aarch64'];
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWPID = 0x20000000;
const SIGCHLD = 17;
const CLONE_THREAD_FLAGS = 0x003d0f00; // what glibc's pthread_create passes

describe('program shape', () => {
  it('is a valid sock_filter array', () => {
    expect(prog.length % 8).toBe(0);
    expect(prog.length / 8).toBeLessThan(BPF_MAXINSNS);
    expect(() => checkFilter(prog)).not.toThrow();
    // first instruction: BPF_LD|BPF_W|BPF_ABS of seccomp_data.arch
    expect(prog.readUInt16LE(0)).toBe(0x20);
    expect(prog.readUInt32LE(4)).toBe(4);
    // is deterministic
    expect(buildSeccompFilter().equals(prog)).toBe(true);
  });

  it('every default denial has a documented reason', () => {
    for (const n of DEFAULT_SECCOMP_POLICY.deny) expect(SECCOMP_REASONS[n], n).toBeTruthy();
    expect(DEFAULT_SECCOMP_POLICY.deny).toEqual(
      expect.arrayContaining([
        'open_by_handle_at',
        'keyctl',
        'bpf',
        'mount',
        'setns',
        'io_uring_setup',
        'kexec_load',
        'init_module',
        'iopl',
        'userfaultfd',
        'perf_event_open',
        'fsopen',
        'open_tree',
        'mount_setattr',
        'syslog',
        'reboot',
        'clock_settime',
      ]),
    );
    expect(DEFAULT_SECCOMP_POLICY.deny).not.toContain('clone');
    expect(DEFAULT_SECCOMP_POLICY.deny).not.toContain('personality');
    expect(DEFAULT_SECCOMP_POLICY.denyCloneFlags).toBe(CLONE_NEWUSER);
  });
});

describe('the default filter, through the interpreter', () => {
  for (const arch of ARCHES) {
    describe(arch, () => {
      it('allows ordinary calls', () => {
        for (const n of ['read', 'write', 'openat', 'execve', 'getpid', 'exit_group', 'ptrace', 'chroot', 'personality', 'sethostname']) {
          expect(verdict(prog, arch, n).action, n).toBe('allow');
        }
        // a syscall number beyond every table (a future call) is allowed: this is a deny list
        expect(describeAction(runFilter(prog, { nr: 1000, arch: ARCH_AUDIT[arch] })).action).toBe('allow');
      });

      it('denies every listed call with EPERM', () => {
        for (const n of DEFAULT_SECCOMP_POLICY.deny) {
          if (SYSCALLS[n]?.[arch] === undefined) continue;
          expect(verdict(prog, arch, n), n).toEqual({ action: 'errno', data: EPERM });
        }
      });

      it('clone: threads, fork and other namespaces pass; CLONE_NEWUSER does not', () => {
        expect(verdict(prog, arch, 'clone', [SIGCHLD]).action).toBe('allow');
        expect(verdict(prog, arch, 'clone', [CLONE_THREAD_FLAGS]).action).toBe('allow');
        expect(verdict(prog, arch, 'clone', [CLONE_NEWNS | CLONE_NEWPID | SIGCHLD]).action).toBe('allow');
        expect(verdict(prog, arch, 'clone', [CLONE_NEWUSER | SIGCHLD])).toEqual({ action: 'errno', data: EPERM });
        expect(verdict(prog, arch, 'clone', [CLONE_NEWUSER | CLONE_NEWNS])).toEqual({ action: 'errno', data: EPERM });
        // high 32 bits are not flags clone() looks at
        expect(verdict(prog, arch, 'clone', [0xffffffff00000000n | BigInt(SIGCHLD)]).action).toBe('allow');
      });

      it('unshare: CLONE_NEWUSER denied, others left to capabilities', () => {
        expect(verdict(prog, arch, 'unshare', [CLONE_NEWUSER])).toEqual({ action: 'errno', data: EPERM });
        expect(verdict(prog, arch, 'unshare', [CLONE_NEWUSER | CLONE_NEWNS])).toEqual({ action: 'errno', data: EPERM });
        expect(verdict(prog, arch, 'unshare', [CLONE_NEWNS]).action).toBe('allow');
        expect(verdict(prog, arch, 'unshare', [0]).action).toBe('allow');
      });

      it('clone3 returns ENOSYS so libc falls back to clone', () => {
        expect(verdict(prog, arch, 'clone3')).toEqual({ action: 'errno', data: ENOSYS });
      });
    });
  }

  it('x32 syscalls on x86_64 fail with ENOSYS', () => {
    expect(describeAction(runFilter(prog, { nr: X32_SYSCALL_BIT | 0, arch: AUDIT_ARCH_X86_64 }))).toEqual({
      action: 'errno',
      data: ENOSYS,
    });
    expect(describeAction(runFilter(prog, { nr: X32_SYSCALL_BIT | 165, arch: AUDIT_ARCH_X86_64 }))).toEqual({
      action: 'errno',
      data: ENOSYS,
    });
  });

  it('any other arch (i386 via int 0x80, …) kills the process', () => {
    // i386 mount is 21, which x86_64 would read as access(): the arch check must come first
    expect(runFilter(prog, { nr: 21, arch: AUDIT_ARCH_I386 })).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(runFilter(prog, { nr: 0, arch: 0x40000028 /* ARM */ })).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(describeAction(runFilter(prog, { nr: 63, arch: 0 })).action).toBe('kill_process');
  });

  it('aarch64 numbers are not confused with x86_64 ones', () => {
    // 40 is mount on aarch64 and sendfile on x86_64
    expect(describeAction(runFilter(prog, { nr: 40, arch: ARCH_AUDIT.aarch64 })).action).toBe('errno');
    expect(describeAction(runFilter(prog, { nr: 40, arch: ARCH_AUDIT.x86_64 })).action).toBe('allow');
  });
});

describe('other policies', () => {
  it('custom errno, deny list and clone flags', () => {
    const p = buildSeccompFilter({ deny: ['ptrace', 'clone'], denyErrno: 13, denyCloneFlags: 0 });
    expect(verdict(p, 'x86_64', 'ptrace')).toEqual({ action: 'errno', data: 13 });
    expect(verdict(p, 'x86_64', 'clone', [SIGCHLD])).toEqual({ action: 'errno', data: 13 });
    expect(verdict(p, 'x86_64', 'unshare', [CLONE_NEWUSER]).action).toBe('allow');
    expect(verdict(p, 'x86_64', 'clone3').action).toBe('allow');
    expect(verdict(p, 'x86_64', 'mount').action).toBe('allow');
    const q = buildSeccompFilter({ deny: [], denyErrno: EPERM, denyCloneFlags: CLONE_NEWUSER | CLONE_NEWNS });
    expect(verdict(q, 'aarch64', 'unshare', [CLONE_NEWNS]).data).toBe(EPERM);
  });

  it('rejects bad policies', () => {
    expect(() => buildSeccompFilter({ deny: ['teleport'], denyErrno: 1, denyCloneFlags: 0 })).toThrow(/unknown syscall 'teleport'/);
    expect(() => buildSeccompFilter({ deny: [], denyErrno: 0, denyCloneFlags: 0 })).toThrow(/denyErrno/);
    expect(() => buildSeccompFilter({ deny: [], denyErrno: 1, denyCloneFlags: -1 })).toThrow(/denyCloneFlags/);
  });

  it('the interpreter refuses what the kernel would', () => {
    expect(() => checkFilter(Buffer.alloc(0))).toThrow(/non-empty/);
    const badLoad = Buffer.alloc(16);
    badLoad.writeUInt16LE(0x20, 0);
    badLoad.writeUInt32LE(2, 4); // unaligned
    badLoad.writeUInt16LE(0x06, 8);
    expect(() => checkFilter(badLoad)).toThrow(/aligned/);
    const noRet = Buffer.alloc(8);
    noRet.writeUInt16LE(0x20, 0);
    expect(() => checkFilter(noRet)).toThrow(/return/);
    const farJump = Buffer.alloc(16);
    farJump.writeUInt16LE(0x15, 0);
    farJump.writeUInt8(5, 2);
    farJump.writeUInt16LE(0x06, 8);
    expect(() => checkFilter(farJump)).toThrow(/past the end/);
    expect(describeAction(SECCOMP_RET_ERRNO | 38)).toEqual({ action: 'errno', data: 38 });
    expect(describeAction(SECCOMP_RET_ALLOW).action).toBe('allow');
  });
});

describe("syscall numbers match this machine's headers", () => {
  const x86 = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
  const generic = '/usr/include/asm-generic/unistd.h';
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined);
  const num = (text: string, name: string) => {
    const m = new RegExp(`^#define __NR(?:3264)?_${name}\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  it.skipIf(read(x86) === undefined)('x86_64', () => {
    const t = read(x86) as string;
    for (const [name, n] of Object.entries(SYSCALLS)) {
      const h = num(t, name);
      if (h !== undefined) expect(n.x86_64, name).toBe(h);
    }
  });
  it.skipIf(read(generic) === undefined)('aarch64 (asm-generic)', () => {
    const t = read(generic) as string;
    for (const [name, n] of Object.entries(SYSCALLS)) {
      const h = num(t, name);
      if (h !== undefined && n.aarch64 !== undefined) expect(n.aarch64, name).toBe(h);
    }
  });
});
