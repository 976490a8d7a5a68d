// Puts a shared-network context's sock_addr programs (src/net/sockaddr.ts)
// on its cgroup v2 directory, through the native loader
// src/native/paene-bpf.c, which loads and attaches what it is given and
// decides nothing. Attaching again replaces the programs in place; a live
// change of addresses that keeps the programs only rewrites the cgroup's
// storage value (applySockAddr); detaching removes them. (A start does not come
// here: the monitor attaches the sets it keeps loaded, paene-helper.c.)

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { BPF_DW, BPF_IMM, BPF_LD, BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE } from '../bpf/ebpf.js';
import { PaeneError } from '../model/errors.js';
import { SOCK_ADDR_HOOKS, type SockAddrHook, STORE } from '../net/sockaddr.js';
import { type AttachName, progArgs, SockAttachError, storageArgs } from '../proto/sock-attach.js';
import { nativePath } from './helper.js';

/** paene-bpf's exit status when the kernel lacks cgroup BPF (see paene-bpf.c). */
const EXIT_UNSUPPORTED = 3;

const RUN_OPTIONS = { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } };

function run(args: string[], what: string): string {
  const r = spawnSync(nativePath('paene-bpf'), args, {
    ...RUN_OPTIONS,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 16 << 20, // a verifier log can be long
  });
  return outcome(r.error, r.status, r.signal, r.stdout, r.stderr, what);
}

function outcome(
  error: Error | undefined,
  status: number | null,
  signal: NodeJS.Signals | null,
  stdout: string,
  stderr: string,
  what: string,
): string {
  if (error) throw new PaeneError('internal', `${what}: could not run paene-bpf: ${error.message}`, { cause: error });
  if (status === 0) return stdout;
  const err = (stderr || `exit ${status ?? signal}`).trim();
  if (status === EXIT_UNSUPPORTED) throw new PaeneError('unsupported', `${what}: ${err.replace(/^paene-bpf: unsupported: /, '')}`);
  throw new PaeneError('internal', `${what}: ${err}`);
}

/**
 * The order the programs go to the kernel. sockattach.h writes the cgroup's
 * storage value right after the first attach of a program that reads it;
 * until then the programs fail closed. The hooks that only leave a call
 * unchanged then (getsockname6 reads the value whatever the shape) go first,
 * so a live change never refuses a bind or a connect in between.
 */
const leavesUnchanged = (h: SockAddrHook) => /^(getsockname|getpeername|recvmsg)/.test(h);
const ATTACH_ORDER: readonly SockAddrHook[] = [
  'getsockname6',
  ...SOCK_ADDR_HOOKS.filter((h) => h !== 'getsockname6' && leavesUnchanged(h)),
  ...SOCK_ADDR_HOOKS.filter((h) => !leavesUnchanged(h)),
];

/** A set of programs and, when they read them, the cgroup's storage value and the address sets (sockaddr.ts's SockAddrWall). */
export interface SockAddrLoad {
  progs: Readonly<Partial<Record<SockAddrHook, Buffer>>>;
  storage?: Buffer;
  addrSet4?: Buffer;
  addrSet6?: Buffer;
}

/** The hex arguments of program sets already seen (buildSockAddr hands out the same object for the same set). */
const hexOf = new WeakMap<object, string[]>();

/** A part of the loader's program list (src/proto/sock-attach.ts), a writer's refusal as the runtime's error. */
function listArgs(part: () => string[]): string[] {
  try {
    return part();
  } catch (e) {
    if (e instanceof SockAttachError) throw new PaeneError('internal', e.message);
    throw e;
  }
}

/**
 * The socket storage map the programs share (sk-storage=BYTES, sockaddr.ts's
 * STORE), the cgroup storage value (cg-storage=HEX), the address sets
 * (addr-set4=HEX, addr-set6=HEX: the host's addresses, when many), then HOOK=HEX
 * arguments in ATTACH_ORDER (also what a start hands the helper): the
 * loader's program list, src/proto/sock-attach.ts.
 */
export function sockAddrArgs(w: SockAddrLoad): string[] {
  let progs = hexOf.get(w.progs);
  if (progs === undefined) {
    const list: [AttachName, Buffer][] = [];
    for (const h of ATTACH_ORDER) {
      const p = w.progs[h];
      if (p !== undefined) list.push([h, p]);
    }
    progs = listArgs(() => progArgs(list));
    hexOf.set(w.progs, progs);
  }
  const maps = { skStorage: STORE.size, cgStorage: w.storage, addrSet4: w.addrSet4, addrSet6: w.addrSet6 };
  return [...listArgs(() => storageArgs(maps)), ...progs];
}

/**
 * Loads the programs, attaches them to the cgroup (replacing the ones of the
 * same hooks already there) and writes the cgroup's storage value. All or
 * nothing: if one fails, the cgroup is left as it was.
 */
export function attachSockAddr(cgroupDir: string, w: SockAddrLoad): void {
  run(['attach', cgroupDir, ...sockAddrArgs(w)], `attaching the network programs to ${cgroupDir}`);
}

/** Removes every sock_addr program paene attaches from the cgroup; hooks without one are fine. */
export function detachSockAddr(cgroupDir: string): void {
  run(['detach', cgroupDir, ...SOCK_ADDR_HOOKS], `detaching the network programs from ${cgroupDir}`);
}

/** What is attached directly to the cgroup, per hook: how many programs, and the kernel's tag of the first. */
function querySockAddr(cgroupDir: string): Record<SockAddrHook, { count: number; tag?: string }> {
  const out = run(['query', cgroupDir, ...SOCK_ADDR_HOOKS], `querying the network programs of ${cgroupDir}`);
  const byType = new Map<string, { count: number; tag?: string }>();
  for (const line of out.split('\n')) {
    const m = /^([a-z0-9]+) (\d+)(?: ([0-9a-f]+|-))?$/.exec(line.trim());
    if (m) byType.set(m[1] as string, { count: Number(m[2]), tag: m[3] === '-' ? undefined : m[3] });
  }
  const q = {} as Record<SockAddrHook, { count: number; tag?: string }>;
  for (const h of SOCK_ADDR_HOOKS) {
    const n = byType.get(h);
    if (n === undefined) throw new PaeneError('internal', `paene-bpf query gave no count for ${h}: '${out.trim()}'`);
    q[h] = n;
  }
  return q;
}

/** How many programs are attached directly to the cgroup, per hook (leak checks, status). */
export function attachedSockAddr(cgroupDir: string): Record<SockAddrHook, number> {
  const q = querySockAddr(cgroupDir);
  return Object.fromEntries(SOCK_ADDR_HOOKS.map((h) => [h, q[h].count])) as Record<SockAddrHook, number>;
}

/**
 * The tags the kernel may give a program (struct bpf_prog_info's tag): the
 * first 8 bytes of a hash of its instructions with the map references
 * zeroed (kernel/bpf/core.c, bpf_prog_calc_tag): SHA-256 on this 6.18
 * kernel (checked), SHA-1 on older ones.
 */
export function programTags(prog: Buffer): string[] {
  const b = Buffer.from(prog);
  for (let o = 0; o + 16 <= b.length; o += 8) {
    if (b[o] !== (BPF_LD | BPF_DW | BPF_IMM) || ![BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE].includes(b[o + 1] >> 4)) continue;
    b.fill(0, o + 4, o + 8);
    b.fill(0, o + 12, o + 16);
    o += 8;
  }
  return ['sha256', 'sha1'].map((alg) => createHash(alg).update(b).digest('hex').slice(0, 16));
}

/**
 * A live change of a context's wall: when the programs attached are these
 * (same shape and host lists: their tags match) only the cgroup's storage
 * value is rewritten, in place (the kernel swaps a cgroup storage value
 * whole); otherwise the programs are attached anew. Says which it did.
 */
export function applySockAddr(cgroupDir: string, w: SockAddrLoad): 'stored' | 'attached' {
  const hooks = SOCK_ADDR_HOOKS.filter((h) => w.progs[h] !== undefined);
  if (w.storage !== undefined) {
    const q = querySockAddr(cgroupDir);
    const same = hooks.every(
      (h) => q[h].count === 1 && q[h].tag !== undefined && programTags(w.progs[h] as Buffer).includes(q[h].tag as string),
    );
    if (same) {
      try {
        run(['store', cgroupDir, w.storage.toString('hex'), ...hooks], `updating the addresses of ${cgroupDir}`);
        return 'stored';
      } catch {
        /* no storage map of that size after all: attach anew */
      }
    }
  }
  attachSockAddr(cgroupDir, w);
  return 'attached';
}

/** Loads the programs into the kernel's verifier and throws (with its log) if it rejects one; attaches nothing. */
export function verifySockAddr(w: SockAddrLoad): void {
  run(['verify', ...sockAddrArgs(w)], 'verifying the network programs');
}

/** paene-runc on cgroup v2: the container's device rules (core/ociresources deviceProgram) on its cgroup. */
export function attachDeviceProgram(cgroupDir: string, prog: Buffer): void {
  run(['attach', cgroupDir, ...listArgs(() => progArgs([['device', prog]]))], `attaching the device rules to ${cgroupDir}`);
}

/** Loads a device program into the verifier only (tests). */
export function verifyDeviceProgram(prog: Buffer): void {
  run(['verify', ...listArgs(() => progArgs([['device', prog]]))], 'verifying the device program');
}
