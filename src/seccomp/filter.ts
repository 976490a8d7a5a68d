// A classic-BPF seccomp filter for processes in a context, generated from a
// small deny-list policy, plus a pure interpreter that runs the program the
// way the kernel would so tests can prove it does what the policy says.
//
// The native helper loads the bytes with prctl(PR_SET_SECCOMP,
// SECCOMP_MODE_FILTER, &(struct sock_fprog){len, filter}) after it has joined
// the context's namespaces and done its mounts (the filter denies setns and
// mount for itself too) and before it drops capabilities and execs.
//
// The filter is a deny list on top of the capability bounding set: most of
// these calls already fail with EPERM for guest root; the filter is a second
// wall (and the only one for user namespaces, io_uring and keyctl, which need
// no capability at all).

import { PaeneError } from '../model/errors.js';

// struct sock_filter opcodes (linux/bpf_common.h, linux/filter.h)
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JA = 0x05;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGT_K = 0x25;
const BPF_JMP_JGE_K = 0x35;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;
/** A &= k: the OCI compiler's SCMP_CMP_MASKED_EQ (seccomp/oci-profile.ts) */
const BPF_ALU_AND_K = 0x54;

// linux/seccomp.h
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
export const SECCOMP_RET_TRACE = 0x7ff00000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ACTION_FULL = 0xffff0000;
const SECCOMP_RET_DATA = 0x0000ffff;

// linux/audit.h
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_AARCH64 = 0xc00000b7;
export const AUDIT_ARCH_I386 = 0x40000003;
/** x32 ABI syscalls on x86_64 carry this bit in nr. */
export const X32_SYSCALL_BIT = 0x40000000;

// struct seccomp_data offsets
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARGS = 16;

export const CLONE_NEWUSER = 0x10000000;
export const EPERM = 1;
export const ENOSYS = 38; // same on x86_64 and aarch64

export const BPF_MAXINSNS = 4096;

export type Arch = 'x86_64' | 'aarch64';
export const ARCH_AUDIT: Readonly<Record<Arch, number>> = { x86_64: AUDIT_ARCH_X86_64, aarch64: AUDIT_ARCH_AARCH64 };

/**
 * Syscall numbers: x86_64 from asm/unistd_64.h; aarch64 uses the
 * asm-generic/unistd.h table. Absent = the call does not exist on that arch.
 * open_tree_attr (467, Linux 6.15) is newer than most installed headers.
 */
export const SYSCALLS: Readonly<Record<string, Partial<Record<Arch, number>>>> = {
  // allowed ones the tests use
  read: { x86_64: 0, aarch64: 63 },
  write: { x86_64: 1, aarch64: 64 },
  openat: { x86_64: 257, aarch64: 56 },
  getpid: { x86_64: 39, aarch64: 172 },
  execve: { x86_64: 59, aarch64: 221 },
  exit_group: { x86_64: 231, aarch64: 94 },
  fork: { x86_64: 57 },
  vfork: { x86_64: 58 },
  ptrace: { x86_64: 101, aarch64: 117 },
  chroot: { x86_64: 161, aarch64: 51 },
  sethostname: { x86_64: 170, aarch64: 161 },
  personality: { x86_64: 135, aarch64: 92 },
  // handled by argument
  clone: { x86_64: 56, aarch64: 220 },
  clone3: { x86_64: 435, aarch64: 435 },
  unshare: { x86_64: 272, aarch64: 97 },
  socket: { x86_64: 41, aarch64: 198 },
  // denied by default
  open_by_handle_at: { x86_64: 304, aarch64: 265 },
  keyctl: { x86_64: 250, aarch64: 219 },
  add_key: { x86_64: 248, aarch64: 217 },
  request_key: { x86_64: 249, aarch64: 218 },
  bpf: { x86_64: 321, aarch64: 280 },
  perf_event_open: { x86_64: 298, aarch64: 241 },
  userfaultfd: { x86_64: 323, aarch64: 282 },
  kexec_load: { x86_64: 246, aarch64: 104 },
  kexec_file_load: { x86_64: 320, aarch64: 294 },
  init_module: { x86_64: 175, aarch64: 105 },
  finit_module: { x86_64: 313, aarch64: 273 },
  delete_module: { x86_64: 176, aarch64: 106 },
  iopl: { x86_64: 172 },
  ioperm: { x86_64: 173 },
  swapon: { x86_64: 167, aarch64: 224 },
  swapoff: { x86_64: 168, aarch64: 225 },
  reboot: { x86_64: 169, aarch64: 142 },
  settimeofday: { x86_64: 164, aarch64: 170 },
  clock_settime: { x86_64: 227, aarch64: 112 },
  clock_adjtime: { x86_64: 305, aarch64: 266 },
  adjtimex: { x86_64: 159, aarch64: 171 },
  acct: { x86_64: 163, aarch64: 89 },
  quotactl: { x86_64: 179, aarch64: 60 },
  quotactl_fd: { x86_64: 443, aarch64: 443 },
  lookup_dcookie: { x86_64: 212, aarch64: 18 },
  uselib: { x86_64: 134 },
  nfsservctl: { x86_64: 180, aarch64: 42 },
  vhangup: { x86_64: 153, aarch64: 58 },
  mount: { x86_64: 165, aarch64: 40 },
  umount2: { x86_64: 166, aarch64: 39 },
  pivot_root: { x86_64: 155, aarch64: 41 },
  open_tree: { x86_64: 428, aarch64: 428 },
  move_mount: { x86_64: 429, aarch64: 429 },
  fsopen: { x86_64: 430, aarch64: 430 },
  fsconfig: { x86_64: 431, aarch64: 431 },
  fsmount: { x86_64: 432, aarch64: 432 },
  fspick: { x86_64: 433, aarch64: 433 },
  mount_setattr: { x86_64: 442, aarch64: 442 },
  open_tree_attr: { x86_64: 467, aarch64: 467 },
  setns: { x86_64: 308, aarch64: 268 },
  io_uring_setup: { x86_64: 425, aarch64: 425 },
  io_uring_enter: { x86_64: 426, aarch64: 426 },
  io_uring_register: { x86_64: 427, aarch64: 427 },
  syslog: { x86_64: 103, aarch64: 116 },
};

/** Why each call is denied (docs/security.md prints this table). */
export const SECCOMP_REASONS: Readonly<Record<string, string>> = {
  'clone/unshare(CLONE_NEWUSER)':
    'a new user namespace gives full capabilities over new namespaces; that reopens kernel attack surface (mount, netfilter, overlayfs code) that the bounding set closed',
  clone3:
    'its flags are in memory, which BPF cannot read, so it cannot be checked for CLONE_NEWUSER; ENOSYS makes libc fall back to clone(), which is checked (as runc and docker do)',
  open_by_handle_at:
    'the "shocker" escape: with DAC_READ_SEARCH (kept by guest root) a guessed file handle opens files outside the guest\'s root',
  keyctl: "the kernel keyrings are not namespaced: a guest could read or fill keys of the host's users with the same uid",
  add_key: 'as keyctl',
  request_key: 'as keyctl; also starts host-side upcall helpers',
  bpf: 'loads programs into the shared kernel (also a rich source of kernel bugs)',
  perf_event_open: 'observes the host and other contexts; side channels and kernel addresses',
  userfaultfd: 'stalls kernel page faults at will, widening race windows in kernel exploits',
  kexec_load: 'replaces the running kernel',
  kexec_file_load: 'replaces the running kernel',
  init_module: 'loads kernel code',
  finit_module: 'loads kernel code',
  delete_module: 'unloads kernel code the host uses',
  iopl: 'raw I/O port access',
  ioperm: 'raw I/O port access',
  swapon: "changes the host's swap",
  swapoff: "changes the host's swap",
  reboot: 'reboots or halts the machine',
  settimeofday: 'the clock is host-wide',
  clock_settime: 'the clock is host-wide',
  clock_adjtime: 'the clock is host-wide',
  adjtimex: 'the clock is host-wide',
  acct: 'process accounting is host-wide',
  quotactl: 'disk quota is managed host-side',
  quotactl_fd: 'disk quota is managed host-side',
  lookup_dcookie: 'profiling interface that reveals host paths',
  uselib: 'obsolete a.out loader, only ever an attack surface',
  nfsservctl: 'removed NFS server control',
  vhangup: 'hangs up terminals shared with the host',
  mount: "the guest's mounts are fixed at start; new mounts could uncover masked /proc and /sys paths",
  umount2: 'unmounting masks (/proc/kcore, read-only /proc/sys) would uncover what they hide',
  pivot_root: 'changes the root of the mount namespace',
  open_tree: 'new mount API: same as mount',
  move_mount: 'new mount API: same as mount',
  fsopen: 'new mount API: same as mount',
  fsconfig: 'new mount API: same as mount',
  fsmount: 'new mount API: same as mount',
  fspick: 'new mount API: same as mount (reconfigures existing superblocks)',
  mount_setattr: 'new mount API: could make read-only mounts writable',
  open_tree_attr: 'new mount API: same as open_tree with attributes',
  setns: "joining other namespaces (another context's, via /proc/PID/ns) is the host's job, done before the filter loads",
  io_uring_setup: 'io_uring bypasses seccomp for the operations it performs and has been a frequent source of kernel exploits',
  io_uring_enter: 'as io_uring_setup',
  io_uring_register: 'as io_uring_setup',
  syslog: 'the kernel log is host-wide and leaks kernel addresses',
};

export interface SeccompPolicy {
  /** syscall names to fail with denyErrno */
  deny: string[];
  denyErrno: number;
  /** clone/unshare with any of these flags (args[0], low 32 bits) fail with denyErrno; nonzero also makes clone3 ENOSYS */
  denyCloneFlags: number;
  /** socket(family, *, protocol) pairs that fail with denyErrno (e.g. sock_diag on the host's shared stack) */
  denySockets?: { family: number; protocol: number }[];
}

export const AF_NETLINK = 16;
export const NETLINK_SOCK_DIAG = 4;

/**
 * The default filter plus no sock_diag netlink: a context on the host's
 * shared stack (network mode `shared`) would otherwise list every socket of
 * the host with `ss`.
 */
export const SHARED_NET_SECCOMP_POLICY: SeccompPolicy = {
  ...baseSeccompPolicy(),
  denySockets: [{ family: AF_NETLINK, protocol: NETLINK_SOCK_DIAG }],
};

function baseSeccompPolicy(): SeccompPolicy {
  return {
    deny: Object.keys(SECCOMP_REASONS).filter((k) => k in SYSCALLS && k !== 'clone3'),
    denyErrno: EPERM,
    denyCloneFlags: CLONE_NEWUSER,
  };
}

export const DEFAULT_SECCOMP_POLICY: SeccompPolicy = baseSeccompPolicy();

/**
 * A context whose pid 1 is the guest's own init may call reboot(2): in a pid
 * namespace other than the host's it only ends that namespace
 * (reboot_pid_ns; the commands that would touch the machine fail with
 * EINVAL there), and an init's halt or reboot ends with it. lxc allows it too.
 */
export function guestInitSeccompPolicy(p: SeccompPolicy): SeccompPolicy {
  return { ...p, deny: p.deny.filter((d) => d !== 'reboot') };
}

/** One classic-BPF instruction (struct sock_filter). */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const ld = (off: number): Insn => ({ code: BPF_LD_W_ABS, jt: 0, jf: 0, k: off });
const ret = (k: number): Insn => ({ code: BPF_RET_K, jt: 0, jf: 0, k: k >>> 0 });
const jeq = (k: number, jt: number, jf: number): Insn => ({ code: BPF_JMP_JEQ_K, jt, jf, k: k >>> 0 });
const jset = (k: number, jt: number, jf: number): Insn => ({ code: BPF_JMP_JSET_K, jt, jf, k: k >>> 0 });

function checkPolicy(p: SeccompPolicy): void {
  if (!Number.isInteger(p.denyErrno) || p.denyErrno < 1 || p.denyErrno > 4095) {
    throw new PaeneError('invalid-argument', `seccomp denyErrno ${p.denyErrno}: must be an errno from 1 to 4095`);
  }
  if (!Number.isInteger(p.denyCloneFlags) || p.denyCloneFlags < 0 || p.denyCloneFlags > 0xffffffff) {
    throw new PaeneError('invalid-argument', `seccomp denyCloneFlags: must be a 32-bit flag mask`);
  }
  for (const r of p.denySockets ?? []) {
    if (!Number.isInteger(r.family) || !Number.isInteger(r.protocol) || r.family < 0 || r.protocol < 0) {
      throw new PaeneError('invalid-argument', `seccomp denySockets: family and protocol must be whole numbers`);
    }
  }
  for (const n of p.deny) {
    if (!(n in SYSCALLS))
      throw new PaeneError('invalid-argument', `seccomp: unknown syscall '${n}' (known: ${Object.keys(SYSCALLS).join(', ')})`);
  }
}

/** The rules for one architecture; every jump is short and forward, so no label resolution is needed. */
function archBlock(arch: Arch, p: SeccompPolicy): Insn[] {
  const errno = SECCOMP_RET_ERRNO | p.denyErrno;
  const out: Insn[] = [ld(OFF_NR)];
  if (arch === 'x86_64') {
    // x32 syscalls share the x86_64 arch value; nothing in a guest needs them.
    out.push(jset(X32_SYSCALL_BIT, 0, 1), ret(SECCOMP_RET_ERRNO | ENOSYS));
  }
  const nr = (name: string) => SYSCALLS[name]?.[arch];
  const deny = new Set(p.deny);
  for (const name of deny) {
    if (name === 'clone' || name === 'unshare' || name === 'clone3') continue;
    const n = nr(name);
    if (n !== undefined) out.push(jeq(n, 0, 1), ret(errno));
  }
  if (deny.has('clone3') || p.denyCloneFlags !== 0) out.push(jeq(nr('clone3') as number, 0, 1), ret(SECCOMP_RET_ERRNO | ENOSYS));
  for (const name of ['clone', 'unshare']) {
    const n = nr(name) as number;
    if (deny.has(name)) out.push(jeq(n, 0, 1), ret(errno));
    else if (p.denyCloneFlags !== 0) {
      // clone(flags, …) and unshare(flags) both take the flags in args[0], on both arches.
      out.push(jeq(n, 0, 4), ld(OFF_ARGS), jset(p.denyCloneFlags, 0, 1), ret(errno), ret(SECCOMP_RET_ALLOW));
    }
  }
  const sockets = p.denySockets ?? [];
  if (sockets.length > 0) {
    // socket(family, type, protocol): family in args[0], protocol in args[2] (low 32 bits).
    const body: Insn[] = [];
    for (const r of sockets) body.push(ld(OFF_ARGS), jeq(r.family, 0, 3), ld(OFF_ARGS + 16), jeq(r.protocol, 0, 1), ret(errno));
    body.push(ret(SECCOMP_RET_ALLOW));
    if (body.length > 255) throw new PaeneError('invalid-argument', 'seccomp denySockets: too many rules');
    out.push(jeq(nr('socket') as number, 0, body.length), ...body);
  }
  out.push(ret(SECCOMP_RET_ALLOW));
  return out;
}

/**
 * The filter program as the bytes of struct sock_filter[] (u16 code, u8 jt,
 * u8 jf, u32 k; little-endian, as both supported arches are). An arch other
 * than x86_64 and aarch64 (e.g. i386 via int 0x80 on x86_64, whose numbers
 * differ and would slip past the table) kills the process.
 */
export function buildSeccompFilter(policy: SeccompPolicy = DEFAULT_SECCOMP_POLICY): Buffer {
  checkPolicy(policy);
  const x86 = archBlock('x86_64', policy);
  const arm = archBlock('aarch64', policy);
  // JA takes a 32-bit offset (jt/jf only 8 bits), so the blocks may be any length.
  const ja = (k: number): Insn => ({ code: BPF_JMP_JA, jt: 0, jf: 0, k });
  const head: Insn[] = [
    ld(OFF_ARCH), // 0
    jeq(AUDIT_ARCH_X86_64, 0, 1), // 1
    ja(3), // 2 → 6: x86 block
    jeq(AUDIT_ARCH_AARCH64, 0, 1), // 3
    ja(x86.length + 1), // 4 → 6 + x86.length: aarch64 block
    ret(SECCOMP_RET_KILL_PROCESS), // 5
  ];
  return encode([...head, ...x86, ...arm]);
}

/** struct sock_filter[] bytes (also used by seccomp/oci-profile.ts). */
export function encode(prog: Insn[]): Buffer {
  if (prog.length > BPF_MAXINSNS) throw new PaeneError('internal', `seccomp program too long (${prog.length} > ${BPF_MAXINSNS})`);
  const b = Buffer.alloc(prog.length * 8);
  prog.forEach((i, n) => {
    b.writeUInt16LE(i.code, n * 8);
    b.writeUInt8(i.jt, n * 8 + 2);
    b.writeUInt8(i.jf, n * 8 + 3);
    b.writeUInt32LE(i.k >>> 0, n * 8 + 4);
  });
  return b;
}

// ---------------------------------------------------------------------------
// The interpreter: classic BPF as seccomp runs it (only 32-bit absolute loads
// from struct seccomp_data, 4-byte aligned; forward jumps only).

export interface SeccompData {
  nr: number;
  arch: number;
  ip?: bigint;
  /** up to six arguments; numbers are taken as unsigned 64-bit */
  args?: (number | bigint)[];
}

function dataBytes(d: SeccompData): Buffer {
  const b = Buffer.alloc(64);
  b.writeInt32LE(d.nr | 0, 0);
  b.writeUInt32LE(d.arch >>> 0, 4);
  b.writeBigUInt64LE(d.ip ?? 0n, 8);
  (d.args ?? []).slice(0, 6).forEach((a, i) => b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), OFF_ARGS + 8 * i));
  return b;
}

function decode(prog: Buffer): Insn[] {
  if (prog.length === 0 || prog.length % 8 !== 0)
    throw new PaeneError('invalid-argument', `a sock_filter program is a non-empty multiple of 8 bytes, got ${prog.length}`);
  const out: Insn[] = [];
  for (let o = 0; o < prog.length; o += 8) {
    out.push({ code: prog.readUInt16LE(o), jt: prog.readUInt8(o + 2), jf: prog.readUInt8(o + 3), k: prog.readUInt32LE(o + 4) });
  }
  return out;
}

/** Checks what the kernel's seccomp_check_filter/bpf_check_classic would: length, opcodes, loads, jump targets, ends in a return. */
export function checkFilter(prog: Buffer): void {
  const p = decode(prog);
  if (p.length > BPF_MAXINSNS) throw new PaeneError('invalid-argument', `program has ${p.length} instructions, more than ${BPF_MAXINSNS}`);
  p.forEach((i, pc) => {
    const where = `instruction ${pc}`;
    switch (i.code) {
      case BPF_LD_W_ABS:
        if (i.k % 4 !== 0 || i.k >= 64)
          throw new PaeneError('invalid-argument', `${where}: load of seccomp_data offset ${i.k} (must be 4-byte aligned, below 64)`);
        break;
      case BPF_RET_K:
      case BPF_ALU_AND_K:
        break;
      case BPF_JMP_JA:
        if (pc + 1 + i.k >= p.length) throw new PaeneError('invalid-argument', `${where}: jump past the end`);
        break;
      case BPF_JMP_JEQ_K:
      case BPF_JMP_JGT_K:
      case BPF_JMP_JGE_K:
      case BPF_JMP_JSET_K:
        if (pc + 1 + Math.max(i.jt, i.jf) >= p.length) throw new PaeneError('invalid-argument', `${where}: jump past the end`);
        break;
      default:
        throw new PaeneError('invalid-argument', `${where}: opcode 0x${i.code.toString(16)} not supported`);
    }
  });
  const last = p[p.length - 1] as Insn;
  if (last.code !== BPF_RET_K) throw new PaeneError('invalid-argument', `the last instruction must be a return`);
}

/** Runs the program on one syscall; returns the 32-bit SECCOMP_RET_* value. */
export function runFilter(prog: Buffer, data: SeccompData): number {
  checkFilter(prog);
  const p = decode(prog);
  const d = dataBytes(data);
  let a = 0;
  for (let pc = 0; pc < p.length; pc++) {
    const i = p[pc] as Insn;
    switch (i.code) {
      case BPF_LD_W_ABS:
        a = d.readUInt32LE(i.k);
        break;
      case BPF_RET_K:
        return i.k >>> 0;
      case BPF_ALU_AND_K:
        a = (a & i.k) >>> 0;
        break;
      case BPF_JMP_JA:
        pc += i.k;
        break;
      case BPF_JMP_JEQ_K:
        pc += a === i.k >>> 0 ? i.jt : i.jf;
        break;
      case BPF_JMP_JGT_K:
        pc += a > i.k >>> 0 ? i.jt : i.jf;
        break;
      case BPF_JMP_JGE_K:
        pc += a >= i.k >>> 0 ? i.jt : i.jf;
        break;
      case BPF_JMP_JSET_K:
        pc += (a & i.k) >>> 0 !== 0 ? i.jt : i.jf;
        break;
    }
  }
  throw new PaeneError('internal', 'seccomp program fell off its end');
}

export type SeccompAction = 'kill_process' | 'kill_thread' | 'trap' | 'errno' | 'user_notif' | 'trace' | 'log' | 'allow';

/** Splits a SECCOMP_RET_* value into its action and data (the errno for 'errno'). */
export function describeAction(ret: number): { action: SeccompAction; data: number } {
  const r = ret >>> 0;
  const data = r & SECCOMP_RET_DATA;
  const act = (r & SECCOMP_RET_ACTION_FULL) >>> 0;
  const table: [number, SeccompAction][] = [
    [SECCOMP_RET_KILL_PROCESS, 'kill_process'],
    [SECCOMP_RET_KILL_THREAD, 'kill_thread'],
    [SECCOMP_RET_TRAP, 'trap'],
    [SECCOMP_RET_ERRNO, 'errno'],
    [SECCOMP_RET_USER_NOTIF, 'user_notif'],
    [SECCOMP_RET_TRACE, 'trace'],
    [SECCOMP_RET_LOG, 'log'],
    [SECCOMP_RET_ALLOW, 'allow'],
  ];
  const hit = table.find(([v]) => v >>> 0 === act);
  // The kernel treats an unknown action as KILL_PROCESS.
  return { action: hit ? hit[1] : 'kill_process', data };
}

/** Convenience for tests and `paene check`: what the filter does to `name` on `arch`. */
export function verdict(prog: Buffer, arch: Arch, name: string, args: (number | bigint)[] = []): { action: SeccompAction; data: number } {
  const nr = SYSCALLS[name]?.[arch];
  if (nr === undefined) throw new PaeneError('invalid-argument', `no syscall '${name}' on ${arch}`);
  return describeAction(runFilter(prog, { nr, arch: ARCH_AUDIT[arch], args }));
}
