// A pure interpreter for the eBPF that src/bpf/ebpf.ts assembles, so tests
// can prove what a program does without a kernel. It runs the encoded bytes
// (the same ones the kernel loads) and is strict where the kernel's verifier
// is: reading an unset register or stack byte, touching memory outside the
// context and the 512-byte stack, or writing r10 are errors. runSockAddr adds
// the rules of BPF_PROG_TYPE_CGROUP_SOCK_ADDR: which bpf_sock_addr fields a
// hook may read or write and how wide, the helpers it may call, the return
// values it may give. It models what paene emits, not all of eBPF.

import {
  BPF_ALU,
  BPF_ALU64,
  BPF_CALL,
  BPF_DW,
  BPF_EXIT,
  BPF_IMM,
  BPF_JA,
  BPF_JMP,
  BPF_JMP32,
  BPF_LD,
  BPF_LDX,
  BPF_MEM,
  BPF_PSEUDO_MAP_FD,
  BPF_ST,
  BPF_STX,
  BPF_X,
  decode,
  SIZE_OF_CODE,
} from '../src/bpf/ebpf.js';
import { PaeneError } from '../src/model/errors.js';
import {
  AF_INET,
  AF_INET6,
  BPF_FUNC_BIND,
  BPF_FUNC_GET_LOCAL_STORAGE,
  BPF_FUNC_KTIME_GET_NS,
  BPF_FUNC_MAP_LOOKUP_ELEM,
  BPF_FUNC_SK_STORAGE_GET,
  BPF_SK_STORAGE_GET_F_CREATE,
  formatIPv4,
  formatIPv6,
  MAP_CGROUP,
  MAP_SET4,
  MAP_SET6,
  MAP_SK,
  parseIPv4,
  parseIPv6,
  SA,
  SK,
  type SockAddrHook,
  STORE,
} from '../src/net/sockaddr.js';

/** Pointers are plain 64-bit values in disjoint regions. */
const CTX_BASE = 1n << 40n;
const STACK_BASE = 2n << 40n;
/** The map an ld_imm64 with BPF_PSEUDO_MAP_FD loads: an opaque handle here, plus the immediate (which map). */
export const MAP_HANDLE = 3n << 40n;
const STACK_SIZE = 512;
const U64 = (v: bigint) => BigInt.asUintN(64, v);
const U32 = (v: bigint) => BigInt.asUintN(32, v);

export type CtxAccess = 'read' | 'write' | 'store-imm';

export interface EbpfMemory {
  /** Reads len bytes at a pointer (context or stack); unset stack bytes are an error. */
  read(ptr: bigint, len: number): Buffer;
}

export interface EbpfRegion {
  name: string;
  base: bigint;
  buf: Buffer;
  /** Rejects (throws) an access the verifier would refuse. */
  access?: (off: number, size: number, kind: CtxAccess) => void;
}

export interface EbpfEnv {
  /** The context r1 points to at entry (mutated by writes). */
  ctx: Buffer;
  /** Rejects (throws) a context access the verifier would refuse. */
  ctxAccess?: (off: number, size: number, kind: CtxAccess) => void;
  /** More memory a program may reach through pointers it is given (a socket, a map value). */
  regions?: EbpfRegion[];
  /** Helpers by number: args are r1-r5, the result goes to r0. */
  helpers?: Record<number, (args: bigint[], mem: EbpfMemory) => bigint>;
  maxSteps?: number;
}

const fail = (pc: number, msg: string) => new PaeneError('internal', `eBPF insn ${pc}: ${msg}`);

/** Runs a program; returns r0 at exit. */
export function runEbpf(prog: Buffer, env: EbpfEnv): bigint {
  const insns = decode(prog);
  const regs: (bigint | undefined)[] = new Array(11).fill(undefined);
  regs[1] = CTX_BASE;
  regs[10] = STACK_BASE + BigInt(STACK_SIZE);
  const stack = Buffer.alloc(STACK_SIZE);
  const stackSet = new Uint8Array(STACK_SIZE);

  let pc = 0;
  const get = (r: number): bigint => {
    const v = regs[r];
    if (v === undefined) throw fail(pc, `r${r} is read before it is set`);
    return v;
  };
  const set = (r: number, v: bigint) => {
    if (r === 10) throw fail(pc, 'r10 (the frame pointer) is read-only');
    regs[r] = U64(v);
  };
  /** Where an access lands: the context or the stack, at a byte offset. */
  const regions: EbpfRegion[] = [{ name: 'ctx', base: CTX_BASE, buf: env.ctx, access: env.ctxAccess }, ...(env.regions ?? [])];
  const locate = (addr: bigint, size: number): { region: EbpfRegion | 'stack'; off: number } => {
    for (const r of regions)
      if (addr >= r.base && addr + BigInt(size) <= r.base + BigInt(r.buf.length)) return { region: r, off: Number(addr - r.base) };
    if (addr >= STACK_BASE && addr + BigInt(size) <= STACK_BASE + BigInt(STACK_SIZE))
      return { region: 'stack', off: Number(addr - STACK_BASE) };
    throw fail(pc, `memory access of ${size} bytes outside the context, the stack and what the program was given`);
  };
  const load = (addr: bigint, size: number): bigint => {
    const { region, off } = locate(addr, size);
    if (region !== 'stack') {
      region.access?.(off, size, 'read');
      return readLE(region.buf, off, size);
    }
    for (let i = off; i < off + size; i++) if (!stackSet[i]) throw fail(pc, `reads stack byte fp-${STACK_SIZE - i} before writing it`);
    return readLE(stack, off, size);
  };
  const storeMem = (addr: bigint, size: number, v: bigint, kind: CtxAccess) => {
    const { region, off } = locate(addr, size);
    if (region !== 'stack') {
      region.access?.(off, size, kind);
      writeLE(region.buf, off, size, v);
    } else {
      writeLE(stack, off, size, v);
      stackSet.fill(1, off, off + size);
    }
  };
  const mem: EbpfMemory = {
    read(ptr, len) {
      const { region, off } = locate(ptr, len);
      if (region !== 'stack') return Buffer.from(region.buf.subarray(off, off + len));
      for (let i = off; i < off + len; i++)
        if (!stackSet[i]) throw fail(pc, `a helper reads stack byte fp-${STACK_SIZE - i} before it is written`);
      return Buffer.from(stack.subarray(off, off + len));
    },
  };

  const maxSteps = env.maxSteps ?? 100_000;
  for (let steps = 0; steps < maxSteps; steps++) {
    if (pc < 0 || pc >= insns.length) throw fail(pc, 'jumped or fell outside the program');
    const { code, dst, src, off, imm } = insns[pc];
    const cls = code & 0x07;
    const op = code & 0xf0;
    const imm64 = BigInt(imm); // sign-extended, as the kernel does

    if (cls === BPF_ALU64 || cls === BPF_ALU) {
      const is32 = cls === BPF_ALU;
      const a = op === 0xb0 ? 0n : get(dst); // mov does not read dst
      const bRaw = code & BPF_X ? get(src) : imm64;
      const [x, y] = is32 ? [U32(a), U32(bRaw)] : [U64(a), U64(bRaw)];
      const bits = is32 ? 32 : 64;
      const shift = y & BigInt(bits - 1);
      let r: bigint;
      switch (op) {
        case 0x00:
          r = x + y;
          break;
        case 0x10:
          r = x - y;
          break;
        case 0x20:
          r = x * y;
          break;
        case 0x30:
          r = y === 0n ? 0n : x / y;
          break; // the kernel defines x/0 = 0
        case 0x40:
          r = x | y;
          break;
        case 0x50:
          r = x & y;
          break;
        case 0x60:
          r = x << shift;
          break;
        case 0x70:
          r = x >> shift;
          break;
        case 0x80:
          r = -x;
          break;
        case 0x90:
          r = y === 0n ? x : x % y;
          break;
        case 0xa0:
          r = x ^ y;
          break;
        case 0xb0:
          r = y;
          break;
        case 0xc0:
          r = BigInt.asIntN(bits, x) >> shift;
          break;
        default:
          throw fail(pc, `ALU op 0x${op.toString(16)} is not supported`);
      }
      set(dst, is32 ? U32(r) : r);
      pc++;
    } else if (cls === BPF_JMP || cls === BPF_JMP32) {
      if (op === BPF_EXIT && cls === BPF_JMP) return get(0);
      if (op === BPF_JA && cls === BPF_JMP) {
        pc += 1 + off;
        continue;
      }
      if (op === BPF_CALL && cls === BPF_JMP) {
        const h = env.helpers?.[imm];
        if (!h) throw fail(pc, `unknown helper ${imm} for this program type`);
        const args = [1, 2, 3, 4, 5].map((r) => regs[r] ?? 0n);
        const result = h(args, mem);
        for (let r = 1; r <= 5; r++) regs[r] = undefined; // clobbered by the call
        regs[0] = U64(result);
        pc++;
        continue;
      }
      const is32 = cls === BPF_JMP32;
      const bits = is32 ? 32 : 64;
      const u = (v: bigint) => BigInt.asUintN(bits, v);
      const s = (v: bigint) => BigInt.asIntN(bits, v);
      const a = get(dst);
      const b = code & BPF_X ? get(src) : imm64;
      let taken: boolean;
      switch (op) {
        case 0x10:
          taken = u(a) === u(b);
          break;
        case 0x20:
          taken = u(a) > u(b);
          break;
        case 0x30:
          taken = u(a) >= u(b);
          break;
        case 0x40:
          taken = (u(a) & u(b)) !== 0n;
          break;
        case 0x50:
          taken = u(a) !== u(b);
          break;
        case 0x60:
          taken = s(a) > s(b);
          break;
        case 0x70:
          taken = s(a) >= s(b);
          break;
        case 0xa0:
          taken = u(a) < u(b);
          break;
        case 0xb0:
          taken = u(a) <= u(b);
          break;
        case 0xc0:
          taken = s(a) < s(b);
          break;
        case 0xd0:
          taken = s(a) <= s(b);
          break;
        default:
          throw fail(pc, `jump op 0x${op.toString(16)} is not supported`);
      }
      pc += taken ? 1 + off : 1;
    } else if (code === (BPF_LD | BPF_DW | BPF_IMM)) {
      const hi = insns[pc + 1];
      if (!hi) throw fail(pc, 'ld_imm64 without its second half');
      if (src === BPF_PSEUDO_MAP_FD) set(dst, MAP_HANDLE + BigInt(imm));
      else if (src !== 0) throw fail(pc, `ld_imm64 with src_reg ${src} is not supported`);
      else set(dst, (BigInt(hi.imm >>> 0) << 32n) | BigInt(imm >>> 0));
      pc += 2;
    } else if (cls === BPF_LDX && (code & 0xe0) === BPF_MEM) {
      set(dst, load(get(src) + BigInt(off), SIZE_OF_CODE[code & 0x18]));
      pc++;
    } else if (cls === BPF_STX && (code & 0xe0) === BPF_MEM) {
      storeMem(get(dst) + BigInt(off), SIZE_OF_CODE[code & 0x18], get(src), 'write');
      pc++;
    } else if (cls === BPF_ST && (code & 0xe0) === BPF_MEM) {
      storeMem(get(dst) + BigInt(off), SIZE_OF_CODE[code & 0x18], imm64, 'store-imm');
      pc++;
    } else {
      throw fail(pc, `opcode 0x${code.toString(16)} is not supported`);
    }
  }
  throw new PaeneError('internal', `eBPF program ran more than ${maxSteps} steps`);
}

function readLE(b: Buffer, off: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[off + i]);
  return v;
}

function writeLE(b: Buffer, off: number, size: number, v: bigint): void {
  for (let i = 0; i < size; i++) b[off + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

// ---- BPF_PROG_TYPE_CGROUP_SOCK_ADDR --------------------------------------

const V4_HOOKS = new Set<SockAddrHook>(['bind4', 'connect4', 'sendmsg4', 'recvmsg4', 'getpeername4', 'getsockname4']);
const SK_BASE = 4n << 40n;
const STORAGE_BASE = 5n << 40n;
const LOCAL_BASE = 6n << 40n;
/** What bpf_map_lookup_elem returns for a key in an address set: a value pointer the programs only test for NULL. */
const SET_VALUE = 7n << 40n;

/** What the kernel's sock_addr_is_valid_access allows (net/core/filter.c). */
function sockAddrAccess(hook: SockAddrHook): (off: number, size: number, kind: CtxAccess) => void {
  const v4 = V4_HOOKS.has(hook);
  return (off, size, kind) => {
    const deny = (why: string) => {
      throw new PaeneError('internal', `${hook}: invalid bpf_sock_addr access off=${off} size=${size} (${kind}): ${why}`);
    };
    if (off % size !== 0) deny('misaligned');
    if (kind === 'store-imm') deny('BPF_ST stores into the context (refused by kernels before 6.3)');
    const within = (start: number, len: number) => off >= start && off + size <= start + len;
    let wideOk = false;
    if (within(SA.user_ip4, 4)) {
      if (!v4) deny('user_ip4 only exists for the IPv4 hooks');
    } else if (within(SA.user_ip6, 16)) {
      if (v4) deny('user_ip6 only exists for the IPv6 hooks');
      wideOk = true;
    } else if (within(SA.msg_src_ip4, 4)) {
      if (hook !== 'sendmsg4') deny('msg_src_ip4 only exists for sendmsg4');
    } else if (within(SA.msg_src_ip6, 16)) {
      if (hook !== 'sendmsg6') deny('msg_src_ip6 only exists for sendmsg6');
      wideOk = true;
    } else if (within(SA.user_port, 4)) {
      // readable and writable in every hook
    } else if (within(SA.sk, 8)) {
      if (kind !== 'read' || size !== 8) deny('sk is a pointer: read-only, 8 bytes wide');
      return;
    } else if ([SA.user_family, SA.family, SA.type, SA.protocol].some((f) => within(f, 4))) {
      if (kind !== 'read') deny('read-only field');
      if (size !== 4) deny('must be read 4 bytes wide');
      return;
    } else {
      deny('not a field paene uses');
    }
    if (kind === 'read' && size <= 4) return; // narrow reads are fine
    if (size === 4 || (size === 8 && wideOk)) return;
    deny(kind === 'read' ? 'too wide' : 'writes must be 4 bytes wide (or 8 on the IPv6 arrays)');
  };
}

/** A socket call as a hook sees it. */
export interface SockAddrCall {
  /** user_ip4 / user_ip6: the address the call names (bind: local, connect/sendmsg: destination, recvmsg/getpeername: peer). */
  ip: string;
  port?: number;
  /** sendmsg: the source address the kernel would use so far (msg_src_ip4/6). */
  msgSrc?: string;
  type?: 'stream' | 'dgram';
  /** What bpf_bind returns to the program (0, or a negative errno). */
  bindResult?: number;
  /** The socket's connected peer (ctx->sk's dst_ip4/dst_ip6); none by default. */
  peer?: string;
  /**
   * The socket's value in the sk_storage map, carried from call to call as
   * the kernel keeps it with the socket: undefined until a program creates it.
   */
  socket?: { storage?: Buffer };
  /** bpf_ktime_get_ns. */
  now?: bigint;
  /**
   * The keys of the address sets (sockaddr.ts's SockAddrWall addrSet4/6,
   * the maps the loader fills): what bpf_map_lookup_elem finds. A program
   * that looks up a set the call does not give is an error.
   */
  addrSet4?: Buffer;
  addrSet6?: Buffer;
  /**
   * The cgroup's value in the cgroup storage map (bpf_get_local_storage):
   * what paene wrote after the attach, or zeros (not written yet). A
   * program that asks for it when none is given is an error.
   */
  local?: Buffer;
}

export interface SockAddrOutcome {
  /** The program's return value: 1 allow, 0 deny (EPERM). */
  ret: number;
  /** The address and port after the program (rewrites applied). */
  ip: string;
  port: number;
  msgSrc?: string;
  /** Each bpf_bind call, as 'a.b.c.d:port' or '[v6]:port'. */
  binds: string[];
}

/** Runs a sock_addr program as the kernel would for one call, with a bpf_bind stub that records its argument. */
export function runSockAddr(hook: SockAddrHook, prog: Buffer, call: SockAddrCall): SockAddrOutcome {
  const v4 = V4_HOOKS.has(hook);
  const ctx = Buffer.alloc(SA.size);
  const family = v4 ? AF_INET : AF_INET6;
  ctx.writeUInt32LE(family, SA.user_family);
  ctx.writeUInt32LE(family, SA.family);
  ctx.writeUInt32LE(call.type === 'dgram' ? 2 : 1, SA.type);
  ctx.writeUInt32LE(call.type === 'dgram' ? 17 : 6, SA.protocol);
  ctx.writeUInt16BE(call.port ?? 0, SA.user_port); // network order in the low 2 bytes
  const addr = (s: string): Buffer => {
    const b = v4 ? parseIPv4(s) : parseIPv6(s);
    if (!b) throw new PaeneError('invalid-argument', `${hook}: bad test address '${s}'`);
    return b;
  };
  addr(call.ip).copy(ctx, v4 ? SA.user_ip4 : SA.user_ip6);
  if (call.msgSrc !== undefined) addr(call.msgSrc).copy(ctx, v4 ? SA.msg_src_ip4 : SA.msg_src_ip6);

  const sk = Buffer.alloc(SK.size);
  if (call.peer !== undefined) {
    if (v4) addr(call.peer).copy(sk, SK.dst_ip4);
    else {
      const p = addr(call.peer);
      p.copy(sk, SK.dst_ip6);
      if (p.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]))) p.copy(sk, SK.dst_ip4, 12);
    }
  }
  ctx.writeBigUInt64LE(SK_BASE, SA.sk);
  const socket = call.socket ?? {};
  const storage = () => socket.storage ?? Buffer.alloc(0);
  const regions = [
    {
      name: 'sk',
      base: SK_BASE,
      buf: sk,
      access: (off: number, size: number, kind: CtxAccess) => {
        const ok = kind === 'read' && size === 4 && (off === SK.dst_ip4 || (off >= SK.dst_ip6 && off < SK.dst_ip6 + 16 && off % 4 === 0));
        if (!ok) throw new PaeneError('internal', `${hook}: invalid bpf_sock access off=${off} size=${size} (${kind})`);
      },
    },
    {
      name: 'storage',
      base: STORAGE_BASE,
      get buf() {
        return storage();
      },
    },
    { name: 'local', base: LOCAL_BASE, buf: call.local ?? Buffer.alloc(0) },
  ];
  const binds: string[] = [];
  const helpers: EbpfEnv['helpers'] = {
    [BPF_FUNC_SK_STORAGE_GET]: ([map, skp, init, flags]) => {
      if (map !== MAP_HANDLE + BigInt(MAP_SK))
        throw new PaeneError('internal', `${hook}: bpf_sk_storage_get's first argument must be the socket storage map`);
      if (skp !== SK_BASE) throw new PaeneError('internal', `${hook}: bpf_sk_storage_get's second argument must be ctx->sk`);
      if (init !== 0n) throw new PaeneError('internal', `${hook}: paene passes no initial value`);
      if (!socket.storage && flags & BigInt(BPF_SK_STORAGE_GET_F_CREATE)) socket.storage = Buffer.alloc(STORE.size);
      return socket.storage ? STORAGE_BASE : 0n;
    },
    [BPF_FUNC_KTIME_GET_NS]: () => call.now ?? 0n,
    // bpf_map_lookup_elem(map, key): a pointer to the value, NULL when the key is not there (the value is never read)
    [BPF_FUNC_MAP_LOOKUP_ELEM]: ([map, key], m) => {
      const sets = { [MAP_SET4]: [call.addrSet4, 4], [MAP_SET6]: [call.addrSet6, 16] } as const;
      const which = Number(map - MAP_HANDLE);
      const entry = sets[which as keyof typeof sets];
      if (entry === undefined) throw new PaeneError('internal', `${hook}: bpf_map_lookup_elem on map ${which}, not an address set`);
      const [set, size] = entry;
      if (set === undefined)
        throw new PaeneError('internal', `${hook}: the program looks up address set ${which}, and the call gives none`);
      const k = m.read(key, size);
      for (let o = 0; o < set.length; o += size) if (set.subarray(o, o + size).equals(k)) return SET_VALUE;
      return 0n;
    },
    // bpf_get_local_storage(map, flags): never NULL, the storage of the cgroup the program is attached to
    [BPF_FUNC_GET_LOCAL_STORAGE]: ([map, flags]) => {
      if (map !== MAP_HANDLE + BigInt(MAP_CGROUP))
        throw new PaeneError('internal', `${hook}: bpf_get_local_storage's first argument must be the cgroup storage map`);
      if (flags !== 0n) throw new PaeneError('internal', `${hook}: bpf_get_local_storage's flags must be 0`);
      if (call.local === undefined)
        throw new PaeneError('internal', `${hook}: the program reads the cgroup storage, and the call gives none`);
      return LOCAL_BASE;
    },
  };
  if (hook === 'connect4' || hook === 'connect6') {
    // bpf_bind(ctx, struct sockaddr *addr, int addr_len), as in net/core/filter.c
    helpers[BPF_FUNC_BIND] = ([c, ptr, len], m) => {
      if (c !== CTX_BASE) throw new PaeneError('internal', `${hook}: bpf_bind's first argument must be the context`);
      const n = Number(len);
      const sa = m.read(ptr, n);
      const fam = sa.readUInt16LE(0);
      if (fam === AF_INET && n >= 16) binds.push(`${formatIPv4(sa.subarray(4, 8))}:${sa.readUInt16BE(2)}`);
      else if (fam === AF_INET6 && n >= 24) binds.push(`[${formatIPv6(sa.subarray(8, 24))}]:${sa.readUInt16BE(2)}`);
      else return BigInt(-22); // EINVAL
      return BigInt(call.bindResult ?? 0);
    };
  }
  const ret = Number(runEbpf(prog, { ctx, ctxAccess: sockAddrAccess(hook), helpers, regions }));
  // The verifier's return ranges (check_return_code).
  const range = /^(recvmsg|getpeername|getsockname)/.test(hook) ? [1, 1] : hook.startsWith('bind') ? [0, 3] : [0, 1];
  if (ret < range[0] || ret > range[1])
    throw new PaeneError('internal', `${hook}: returned ${ret}, the kernel allows ${range[0]}..${range[1]}`);

  const fmt = (off: number) => (v4 ? formatIPv4(ctx.subarray(off, off + 4)) : formatIPv6(ctx.subarray(off, off + 16)));
  return {
    ret,
    ip: fmt(v4 ? SA.user_ip4 : SA.user_ip6),
    port: ctx.readUInt16BE(SA.user_port),
    msgSrc: hook.startsWith('sendmsg') ? fmt(v4 ? SA.msg_src_ip4 : SA.msg_src_ip6) : undefined,
    binds,
  };
}
