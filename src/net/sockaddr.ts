// The kernel wall of a "shared" network context: eBPF programs of type
// BPF_PROG_TYPE_CGROUP_SOCK_ADDR, one per hook, attached to the context's
// cgroup v2 directory. The context stays on the host's network stack but may
// only use its own addresses, as a Linux-VServer or FreeBSD-jail guest does:
//
//   bind      own address: yes; wildcard and the host's loopback: rewritten
//             to the primary address; anything else (a neighbour's or a host
//             address): EPERM
//   connect,  to an unpublished host address (hostDeny, checked first):
//   sendmsg   EPERM; to the host's loopback: redirected to the primary
//             address (its "127.0.0.1" is its own); to a neighbour
//             (peerNets4) or the world: as is, except the world from a
//             loopback primary (EPERM, where the kernel would give a
//             bare EINVAL: a 127.x source never leaves the host); the source is
//             forced to the primary address (bpf_bind in connect, msg_src in
//             sendmsg), so nothing leaves with a host address
//   recvmsg,  a peer that is the primary address shows as the loopback the
//   getpeername  program inside used; recvmsg also remembers, per socket, the
//             last host-loopback client (127.0.0.1:port, from the host) so
//             that sendmsg lets the answer to it through instead of
//             redirecting it to the context's own loopback (for 30 s)
//   getsockname  the primary address shows as what the program asked for:
//             a socket bound to 0.0.0.0 or 127.0.0.1 (recorded per socket by
//             bind) reads back 0.0.0.0 or 127.0.0.1; a connection to itself
//             (through its "127.0.0.1") reads 127.0.0.1 at both ends
//
// The per-socket records live in socket-local storage (one
// BPF_MAP_TYPE_SK_STORAGE map per loaded set, layout STORE below), freed by
// the kernel with each socket.
//
// The context's own addresses are not in the programs: they read them at
// run time from the cgroup's value in a BPF_MAP_TYPE_CGROUP_STORAGE map
// (layout LOCAL below), so every context of a host with as many own
// addresses runs the same bytes. The code is generated for that shape (an
// unrolled comparison per own address against a slot of the value; the
// host-wide lists stay immediates, up to 16 entries each), and trusts a
// value only when its ready word names that shape: a value not written yet
// fails closed. The host's own addresses (hostDeny4/6) have no such limit: up
// to 16 per family are immediates too, more are keys of a hash map per
// family (BPF_MAP_TYPE_HASH, made, filled and frozen by the loader from the
// list handed to it, proto/sock-attach.ts's addr-set4/addr-set6), one lookup
// per call; the programs then carry a digest of the set, so that their tags
// (what a live change compares) differ when the host's addresses do. Ranges
// are nets (denyNets4, denyNets6: the host's IPv6 link-local fe80::/10 is one
// net, not an address per interface). All policy is here, decided in TypeScript: the programs and
// the value are made here, and a start hands both to the monitor
// (src/native/paene-helper.c), which keeps loaded sets by their bytes,
// attaches one to the context's cgroup and writes the value;
// src/native/paene-bpf.c does the same for live changes (or only rewrites
// the value when the programs stay). Neither decides anything.
// test/ebpf-run.ts runs the programs in tests the way the kernel would.
//
// Kernel facts the code depends on (include/uapi/linux/bpf.h, net/core/filter.c):
// - struct bpf_sock_addr: user_family 0, user_ip4 4, user_ip6 8..24,
//   user_port 24, family 28, type 32, protocol 36, msg_src_ip4 40,
//   msg_src_ip6 44..60; addresses and port in network byte order.
// - user_ip4 is only accessible in the *4 hooks, user_ip6 only in the *6
//   hooks, msg_src_ip4 only in sendmsg4, msg_src_ip6 only in sendmsg6. Writes
//   must be 4 bytes wide, and from a register: kernels before 6.3 refuse
//   BPF_ST (store immediate) into the context.
// - bpf_bind (helper 64) is only available to connect4/connect6; its binds do
//   not run the bind hooks again.
// - recvmsg, getpeername and getsockname programs must return exactly 1; bind
//   may return 0..3, the others 0..1. 0 makes the syscall fail with EPERM.
// - ctx->sk (offset 64, an 8-byte read) is the socket as a struct bpf_sock:
//   dst_ip4 at 52, dst_ip6 at 56..72 (the connected peer, 0 when none).
//   bpf_sk_storage_get (helper 107) is open to every sock_addr hook.
// - bpf_get_local_storage (helper 81, flags 0) is open to every sock_addr
//   hook and returns the value (never NULL) of the cgroup the running
//   program is attached to. With an 8-byte key (the cgroup id, its
//   directory's inode number) one value serves all attach types of the
//   cgroup; it is made zeroed at the first attach of a program using the
//   map, can be written from user space only after that, and one map may be
//   used by many programs and cgroups (each cgroup its own value). A user
//   space update replaces the value whole (a program sees old or new).
//   Checked on 6.18 (test/kernel/sockaddr.test.ts).
// - A v6 socket sending to a v4-mapped address goes through udp_sendmsg and
//   so through the sendmsg4 program, never the sendmsg6 one; TCP and UDP
//   connect() of a v6 socket to a mapped address run only connect6: the v6
//   programs apply the v4 rules to mapped addresses, or the v6 hooks would be
//   a way around the v4 wall.

import { createHash } from 'node:crypto';
import { Asm, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, type Reg } from '../bpf/ebpf.js';
import { PaeneError } from '../model/errors.js';
import { SOCK_ATTACH_LIST } from '../proto/sock-attach.js';

export interface SockAddrPolicy {
  /** The context's own IPv4 addresses, dotted; v4[0] is the primary (may be empty only if v6 is non-empty). */
  v4: string[];
  /** Own IPv6 addresses (v6[0] is the primary v6); may be empty. */
  v6: string[];
  /** CIDRs of addresses other contexts own (e.g. the pool '127.77.0.0/16'): connect/sendmsg to these allowed as is. */
  peerNets4: string[];
  /**
   * The host's own addresses that are not published to contexts (exact
   * addresses): connect/sendmsg refused. Any number up to
   * SOCK_ATTACH_LIST.maxAddrSet per family (more than 16: a map lookup).
   */
  hostDeny4: string[];
  hostDeny6: string[];
  /**
   * The host's addresses contexts may reach (published; exact, not
   * loopback). With a loopback primary (the 127.x pool) these, the own
   * addresses and peerNets4 are all a context reaches outside 127.0.0.0/8:
   * anything else lies beyond the host, where the kernel would refuse the
   * loopback source with a bare EINVAL; the programs refuse it first (EPERM).
   * Absent: none.
   */
  hostAllow4?: string[];
  /**
   * CIDRs refused whole (checked with hostDeny4, first): the private
   * subnets on this stack (private contexts' ports), whose contexts a
   * shared one reaches only through their published host ports. Absent: none.
   */
  denyNets4?: string[];
  /**
   * IPv6 CIDRs refused whole (checked with hostDeny6, first): e.g.
   * fe80::/10, where every interface of the host has an address of its own.
   * No own address may lie inside. Absent: none.
   */
  denyNets6?: string[];
}

export type SockAddrHook =
  | 'bind4'
  | 'bind6'
  | 'connect4'
  | 'connect6'
  | 'sendmsg4'
  | 'sendmsg6'
  | 'recvmsg4'
  | 'recvmsg6'
  | 'getpeername4'
  | 'getpeername6'
  | 'getsockname4'
  | 'getsockname6';

export const SOCK_ADDR_HOOKS: readonly SockAddrHook[] = [
  'bind4',
  'bind6',
  'connect4',
  'connect6',
  'sendmsg4',
  'sendmsg6',
  'recvmsg4',
  'recvmsg6',
  'getpeername4',
  'getpeername6',
  'getsockname4',
  'getsockname6',
];

/**
 * Each hook's enum bpf_attach_type constant, by name: the loader's program list
 * (proto/sock-attach.ts) is the one source, and the numbers are <linux/bpf.h>'s
 * through the header generated from it (paene-bpf types prints them).
 */
export const ATTACH_TYPE: Readonly<Record<SockAddrHook, string>> = Object.fromEntries(
  SOCK_ATTACH_LIST.types.filter((t) => (SOCK_ADDR_HOOKS as readonly string[]).includes(t.name)).map((t) => [t.name, t.attach]),
) as Record<SockAddrHook, string>;

/** enum bpf_prog_type: BPF_PROG_TYPE_CGROUP_SOCK_ADDR. */
export const BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18;
/** enum bpf_func_id: BPF_FUNC_bind. */
export const BPF_FUNC_BIND = 64;
/** enum bpf_func_id: BPF_FUNC_ktime_get_ns, BPF_FUNC_sk_storage_get. */
export const BPF_FUNC_KTIME_GET_NS = 5;
export const BPF_FUNC_SK_STORAGE_GET = 107;
/** bpf_sk_storage_get's flag: create the socket's value (zeroed) when it has none. */
export const BPF_SK_STORAGE_GET_F_CREATE = 1;
/** struct bpf_sock field offsets (what ctx->sk points to). */
export const SK = { dst_ip4: 52, dst_ip6: 56, size: 80 } as const;
/**
 * The per-socket value in the sk_storage map (u32 words, network order):
 * flags (bit 0: bind recorded the address it was asked for), that address
 * (4 bytes for IPv4, 16 for IPv6), the last host-loopback client a UDP
 * socket heard from (address, port) and when (ktime ns).
 */
export const STORE = { flags: 0, requested: 4, replyAddr4: 20, replyPort: 24, replySeen: 32, size: 40 } as const;
/** enum bpf_func_id: BPF_FUNC_get_local_storage (the cgroup storage of the cgroup the program is attached to). */
export const BPF_FUNC_GET_LOCAL_STORAGE = 81;
/** Which of the loader's maps an ld_imm64 names (its immediate): the socket storage map, the cgroup storage map. */
export const MAP_SK = 0;
export const MAP_CGROUP = 1;
/**
 * A context's value in the cgroup storage map (BPF_MAP_TYPE_CGROUP_STORAGE,
 * one value per cgroup, shared by all its hooks): the ready word, then the
 * own IPv4 addresses (4 bytes each), then the own IPv6 ones (16 bytes each),
 * network order. The ready word is LOCAL_READY | n4 << 8 | n6 << 16: zero
 * until paene writes the value, and a program only trusts a value written
 * for its own shape.
 */
export const LOCAL = { ready: 0, own: 4 } as const;
export const LOCAL_READY = 1;

/**
 * What a shared context's start attaches: the programs, its storage value,
 * and when a host list is longer than MAX_SOCK_ADDR_ENTRIES, the keys of the
 * address set the programs look it up in (4 or 16 bytes each, sorted).
 */
export interface SockAddrWall {
  progs: Readonly<Record<SockAddrHook, Buffer>>;
  storage: Buffer;
  addrSet4?: Buffer;
  addrSet6?: Buffer;
}
/** How long a host-loopback client may be answered after its last datagram (conntrack's unreplied UDP timeout). */
export const REPLY_WINDOW_NS = 30_000_000_000n;

/**
 * Most own addresses per family, and most entries per list: every one is an
 * unrolled comparison. hostDeny4/6 longer than this become an address set
 * (up to SOCK_ATTACH_LIST.maxAddrSet each).
 */
export const MAX_SOCK_ADDR_ENTRIES = 16;
/** enum bpf_func_id: BPF_FUNC_map_lookup_elem. */
export const BPF_FUNC_MAP_LOOKUP_ELEM = 1;
/** Which of the loader's maps an ld_imm64 names: the IPv4 and IPv6 address sets (addr-set4, addr-set6). */
export const MAP_SET4 = 2;
export const MAP_SET6 = 3;

/** struct bpf_sock_addr field offsets. */
export const SA = {
  user_family: 0,
  user_ip4: 4,
  user_ip6: 8,
  user_port: 24,
  family: 28,
  type: 32,
  protocol: 36,
  msg_src_ip4: 40,
  msg_src_ip6: 44,
  sk: 64,
  size: 72,
} as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

// ---- addresses ----------------------------------------------------------

const bad = (msg: string) => new PaeneError('invalid-argument', msg);

/** Dotted IPv4 → its 4 bytes (network order). Undefined if malformed. */
export function parseIPv4(s: string): Buffer | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map((p) => (p.length > 1 && p.startsWith('0') ? NaN : Number(p)));
  if (parts.some((p) => !(p >= 0 && p <= 255))) return undefined; // NaN: a leading zero would read as octal to some tools
  return Buffer.from(parts);
}

/** IPv6 text (with '::' and a dotted tail allowed) → its 16 bytes. Undefined if malformed. */
export function parseIPv6(s: string): Buffer | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.split('::').length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const fields = part.split(':');
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (i === fields.length - 1 && f.includes('.')) {
        const v4 = parseIPv4(f);
        if (!v4) return undefined;
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(f)) {
        out.push(parseInt(f, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const halves = s.split('::');
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 2 && halves[0].includes('.')) return undefined; // a dotted quad only ends an address
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

export function formatIPv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 text: the longest run of zero groups becomes '::'; v4-mapped as ::ffff:a.b.c.d. */
export function formatIPv6(b: Buffer): string {
  if (isMapped(b)) return `::ffff:${formatIPv4(b.subarray(12))}`;
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

const isMapped = (b: Buffer): boolean => b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

/** A 4-byte network-order address as the u32 a 4-byte load on little-endian sees (the program's constants). */
const word = (b: Buffer, at = 0): number => b.readUInt32LE(at);
const words6 = (b: Buffer): number[] => [0, 4, 8, 12].map((o) => word(b, o));

const LOOPBACK4 = word(Buffer.from([127, 0, 0, 1]));
const LOOPBACK6 = words6(parseIPv6('::1') as Buffer);
const MAPPED_TAG = word(Buffer.from([0, 0, 0xff, 0xff])); // user_ip6[2] of ::ffff:a.b.c.d

interface Net4 {
  net: number;
  mask: number;
}
/** An IPv6 net as four (net, mask) words, as a 4-byte load sees them. */
type Net6 = Net4[];

/** The validated policy: own addresses as bytes (they go into the storage value), the rest as program constants. */
interface Compiled {
  own4: Buffer[];
  own6: Buffer[];
  peer4: Net4[];
  deny4: Buffer[];
  deny6: Buffer[];
  allow4: number[];
  denyNets4: Net4[];
  denyNets6: Net6[];
}

function compile(p: SockAddrPolicy): Compiled {
  if (typeof p !== 'object' || p === null) throw bad('the network policy must be an object');
  for (const k of ['v4', 'v6', 'peerNets4', 'hostDeny4', 'hostDeny6', 'hostAllow4', 'denyNets4', 'denyNets6'] as const) {
    if ((k === 'hostAllow4' || k === 'denyNets4' || k === 'denyNets6') && p[k] === undefined) continue;
    const list = p[k] as string[];
    if (!Array.isArray(list)) throw bad(`the network policy's ${k} must be a list of addresses`);
    if ((k === 'hostDeny4' || k === 'hostDeny6') && list.length > SOCK_ATTACH_LIST.maxAddrSet) {
      throw bad(
        `the host has ${list.length} IPv${k.slice(-1)} addresses of its own to refuse; a shared context's wall holds at most ${SOCK_ATTACH_LIST.maxAddrSet}`,
      );
    }
    if (k !== 'hostDeny4' && k !== 'hostDeny6' && list.length > MAX_SOCK_ADDR_ENTRIES) {
      throw bad(`the network policy's ${k} has ${list.length} entries; at most ${MAX_SOCK_ADDR_ENTRIES} are supported`);
    }
    for (const e of list) if (typeof e !== 'string') throw bad(`the network policy's ${k} must hold strings, not ${typeof e}`);
  }
  if (p.v4.length === 0 && p.v6.length === 0) throw bad('a shared-network context needs at least one address of its own (v4 or v6)');

  const v4 = (what: string, s: string): Buffer => {
    const b = parseIPv4(s);
    if (!b) throw bad(`${what}: '${s}' is not an IPv4 address (a.b.c.d)`);
    return b;
  };
  const v6 = (what: string, s: string): Buffer => {
    const b = parseIPv6(s);
    if (!b) throw bad(`${what}: '${s}' is not an IPv6 address`);
    if (isMapped(b)) throw bad(`${what}: '${s}' is an IPv4-mapped address; list the IPv4 address in the v4 list instead`);
    return b;
  };
  const noDuplicates = (what: string, list: string[], key: (s: string) => string) => {
    const seen = new Set<string>();
    for (const s of list) {
      if (seen.has(key(s))) throw bad(`${what}: '${s}' is listed twice`);
      seen.add(key(s));
    }
  };

  const own4 = p.v4.map((s) => {
    const b = v4('own IPv4 address', s);
    if (b[0] === 0 || b[0] >= 224) throw bad(`own IPv4 address: '${s}' is not a unicast address a context can own`);
    return b;
  });
  const own6 = p.v6.map((s) => {
    const b = v6('own IPv6 address', s);
    if (b.every((x) => x === 0)) throw bad(`own IPv6 address: '::' is the wildcard, not an address`);
    if (b[0] === 0xff) throw bad(`own IPv6 address: '${s}' is a multicast address`);
    if (word(b, 0) === 0 && word(b, 4) === 0 && word(b, 8) === 0 && word(b, 12) === LOOPBACK6[3]) {
      throw bad(`own IPv6 address: '::1' is the host's loopback; give the context an address of its own`);
    }
    return b;
  });
  /** A CIDR of either family: its address and mask bytes (host bits refused, the network named). */
  const cidr = (what: string, s: string, family: 4 | 6): { addr: Buffer; mask: Buffer } => {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
    const max = family === 4 ? 32 : 128;
    const bits = m ? Number(m[2]) : NaN;
    const addr = m ? (family === 4 ? parseIPv4 : parseIPv6)(m[1] as string) : undefined;
    if (!addr || !(bits >= 0 && bits <= max))
      throw bad(`${what}: '${s}' is not an ${family === 4 ? 'IPv4 CIDR (a.b.c.d/n)' : 'IPv6 CIDR (a:b::/n)'}`);
    const mask = Buffer.alloc(addr.length);
    for (let i = 0; i < mask.length; i++) mask[i] = 0xff & ~(0xff >> Math.max(0, Math.min(8, bits - 8 * i)));
    if (addr.some((x, i) => (x & ~(mask[i] as number)) !== 0)) {
      const fixed = Buffer.from(addr.map((x, i) => x & (mask[i] as number)));
      throw bad(`${what}: '${s}' has host bits set; did you mean ${(family === 4 ? formatIPv4 : formatIPv6)(fixed)}/${bits}?`);
    }
    return { addr, mask };
  };
  const net4 =
    (what: string) =>
    (s: string): Net4 => {
      const { addr, mask } = cidr(what, s, 4);
      return { net: word(addr), mask: word(mask) };
    };
  const net6 =
    (what: string) =>
    (s: string): Net6 => {
      const { addr, mask } = cidr(what, s, 6);
      return [0, 4, 8, 12].map((o) => ({ net: word(addr, o), mask: word(mask, o) }));
    };
  const peer4 = p.peerNets4.map(net4('peer network'));
  const denyNets4 = (p.denyNets4 ?? []).map(net4('network to deny'));
  const deny4 = p.hostDeny4.map((s) => v4('host address to deny', s));
  const deny6 = p.hostDeny6.map((s) => v6('host IPv6 address to deny', s));
  const denyNets6 = (p.denyNets6 ?? []).map(net6('IPv6 network to deny'));
  for (const o of own6) {
    if (denyNets6.some((n) => inNet6(o, n))) throw bad(`own IPv6 address: '${formatIPv6(o)}' lies in a network denied whole`);
  }
  const allow4 = (p.hostAllow4 ?? []).map((s) => v4('host address to allow', s));

  noDuplicates('own IPv4 address', p.v4, (s) => formatIPv4(v4('', s)));
  noDuplicates('own IPv6 address', p.v6, (s) => formatIPv6(v6('', s)));
  for (const d of deny4) {
    if (own4.some((o) => o.equals(d))) throw bad(`${formatIPv4(d)} is both an own address and a denied host address`);
  }
  for (const d of deny6) {
    if (own6.some((o) => o.equals(d))) throw bad(`${formatIPv6(d)} is both an own address and a denied host address`);
  }
  return {
    own4,
    own6,
    peer4,
    deny4: distinctSorted(deny4),
    deny6: distinctSorted(deny6),
    allow4: allow4.map((b) => word(b)),
    denyNets4,
    denyNets6,
  };
}

const inNet6 = (b: Buffer, n: Net6): boolean => n.every((w, i) => (word(b, 4 * i) & w.mask) >>> 0 === w.net >>> 0);

/** The addresses once each, in byte order: the same host gives the same set, whatever order its interfaces list. */
function distinctSorted(list: Buffer[]): Buffer[] {
  const seen = new Map(list.map((b) => [b.toString('hex'), b]));
  return [...seen.keys()].sort().map((k) => seen.get(k) as Buffer);
}

/** A host list the programs look up in a map (addr-set4/6) rather than compare as immediates. */
const inSet = (list: Buffer[]): boolean => list.length > MAX_SOCK_ADDR_ENTRIES;

/** IPv6 link-local unicast (RFC 4291): every interface of the host has an address there. */
export const LINK_LOCAL6 = 'fe80::/10';

/**
 * What a shared context refuses of the host's addresses (`host`: every
 * address on its interfaces), less those in `keep` (the context's own, the
 * published ones): each address, except the loopback ones (127.0.0.0/8 and
 * ::1 are the context's own loopback, redirected) and the IPv6 link-local
 * ones, which are one net (LINK_LOCAL6) however many interfaces there are.
 */
export function hostRefusals(
  host: readonly string[],
  keep: ReadonlySet<string>,
): Required<Pick<SockAddrPolicy, 'hostDeny4' | 'hostDeny6' | 'denyNets6'>> {
  const out = { hostDeny4: [] as string[], hostDeny6: [] as string[], denyNets6: [LINK_LOCAL6] };
  for (const a of host) {
    if (keep.has(a)) continue;
    const b4 = parseIPv4(a);
    if (b4) {
      if (b4[0] !== 127) out.hostDeny4.push(a);
      continue;
    }
    const b6 = parseIPv6(a);
    const loopback = b6 !== undefined && b6.subarray(0, 15).every((x) => x === 0) && b6[15] === 1;
    const linkLocal = b6 !== undefined && b6[0] === 0xfe && (b6[1] & 0xc0) === 0x80;
    if (!loopback && !linkLocal) out.hostDeny6.push(a); // one that does not parse: compile() names it
  }
  return out;
}

/** Checks a policy without building programs; throws PaeneError('invalid-argument'). */
export function validateSockAddrPolicy(p: SockAddrPolicy): void {
  compile(p);
}

// ---- the context's storage value ------------------------------------------

/** The storage value's size for a context with n4 own IPv4 and n6 own IPv6 addresses (the map's value_size). */
export function localSize(n4: number, n6: number): number {
  return LOCAL.own + 4 * n4 + 16 * n6;
}

/** The ready word of a storage value: what a program specialised on (n4, n6) expects to find. */
export function readyWord(n4: number, n6: number): number {
  return LOCAL_READY | (n4 << 8) | (n6 << 16);
}

function storageOf(c: Compiled): Buffer {
  const b = Buffer.alloc(localSize(c.own4.length, c.own6.length));
  b.writeUInt32LE(readyWord(c.own4.length, c.own6.length), LOCAL.ready);
  c.own4.forEach((a, i) => a.copy(b, LOCAL.own + 4 * i));
  c.own6.forEach((a, i) => a.copy(b, LOCAL.own + 4 * c.own4.length + 16 * i));
  return b;
}

/** The context's value in the cgroup storage map (layout LOCAL): what its programs read its own addresses from. */
export function sockAddrStorage(p: SockAddrPolicy): Buffer {
  return storageOf(compile(p));
}

// ---- code generation ----------------------------------------------------
//
// Registers: r6 holds the context for the whole program (helper calls
// clobber r1-r5); r9 the cgroup's storage value (the own addresses); the
// address under decision is loaded into r2 (IPv4) or r2..r5 (the four words
// of an IPv6 address; reloaded from the context after an address set lookup,
// whose call clobbers them); r1 is scratch; r7 the socket's storage value, r8
// the socket (ctx->sk).

const CTX = R6;
const VAL = R7;
const SOCK = R8;
const LOC = R9;
const TMP = R1;
const W6: [Reg, Reg, Reg, Reg] = [R2, R3, R4, R5];

/** A 32-bit word of an address: a constant, or a slot of the storage value (byte offset) read at run time. */
type W = number | { at: number };

/**
 * What the programs are specialised on: how many own addresses (their
 * slots), and the host-wide lists as constants; a host list in an address
 * set is 'set' (one map lookup), and `sets` a digest of the sets' keys.
 */
interface Shape {
  own4: W[];
  own6: W[][];
  n4: number;
  n6: number;
  peer4: Net4[];
  deny4: number[] | 'set';
  deny6: number[][] | 'set';
  allow4: number[];
  denyNets4: Net4[];
  denyNets6: Net6[];
  sets?: number;
}

function shapeOf(c: Compiled): Shape {
  const n4 = c.own4.length;
  const n6 = c.own6.length;
  return {
    own4: Array.from({ length: n4 }, (_, i) => ({ at: LOCAL.own + 4 * i })),
    own6: Array.from({ length: n6 }, (_, i) => [0, 1, 2, 3].map((w) => ({ at: LOCAL.own + 4 * n4 + 16 * i + 4 * w }))),
    n4,
    n6,
    peer4: c.peer4,
    deny4: inSet(c.deny4) ? 'set' : c.deny4.map((b) => word(b)),
    deny6: inSet(c.deny6) ? 'set' : c.deny6.map(words6),
    allow4: c.allow4,
    denyNets4: c.denyNets4,
    denyNets6: c.denyNets6,
    sets: setsDigest(c),
  };
}

/** The keys of the address sets (undefined: the list is immediates). */
function setsOf(c: Compiled): { addrSet4?: Buffer; addrSet6?: Buffer } {
  return {
    ...(inSet(c.deny4) ? { addrSet4: Buffer.concat(c.deny4) } : {}),
    ...(inSet(c.deny6) ? { addrSet6: Buffer.concat(c.deny6) } : {}),
  };
}

/** 32 bits of a SHA-256 of the sets' keys; undefined when there is no set. */
function setsDigest(c: Compiled): number | undefined {
  const s = setsOf(c);
  if (s.addrSet4 === undefined && s.addrSet6 === undefined) return undefined;
  const h = createHash('sha256');
  h.update(`4:${s.addrSet4?.toString('hex') ?? ''};6:${s.addrSet6?.toString('hex') ?? ''}`);
  return h.digest().readUInt32LE(0);
}

/** Labels every program has: return 1 / return 0. */
interface Exits {
  allow: string;
  deny: string;
}

/**
 * r6 = ctx; with `local`, also r9 = this cgroup's storage value, and a value
 * that is not ready for this shape (zero until paene writes it after the
 * attach, or written for another shape) goes to `notReady`.
 */
function prologue(a: Asm, s: Shape, local: boolean, notReady: 'allow' | 'deny'): Exits {
  const x = { allow: 'allow', deny: 'deny' };
  a.mov64(CTX, R1);
  // the address sets' digest: their content is in the maps, not in these bytes; this puts it in the tag
  if (s.sets !== undefined) a.mov32(TMP, { imm: s.sets });
  if (local) {
    a.ldMap(R1, MAP_CGROUP).mov64(R2, { imm: 0 }).call(BPF_FUNC_GET_LOCAL_STORAGE).mov64(LOC, R0);
    a.ldx(4, TMP, LOC, LOCAL.ready).jmp32('jne', TMP, { imm: readyWord(s.n4, s.n6) }, x[notReady]);
  }
  return x;
}

function epilogue(a: Asm, x: Exits): Buffer {
  a.label(x.allow).ret(1);
  a.label(x.deny).ret(0);
  return a.toBuffer();
}

/** reg = the word (clobbers nothing else). */
function loadW(a: Asm, reg: Reg, w: W): void {
  if (typeof w === 'number') a.mov32(reg, { imm: w });
  else a.ldx(4, reg, LOC, w.at);
}

/** base[off] = the word: 4 bytes, through a register (kernels before 6.3 refuse immediate stores into the context). */
function storeAt(a: Asm, base: Reg, off: number, w: W): void {
  loadW(a, TMP, w);
  a.stx(4, base, off, TMP);
}

function store(a: Asm, off: number, w: W): void {
  storeAt(a, CTX, off, w);
}

function store6(a: Asm, off: number, w: W[]): void {
  w.forEach((v, i) => store(a, off + 4 * i, v));
}

function load6(a: Asm, off: number): void {
  W6.forEach((r, i) => a.ldx(4, r, CTX, off + 4 * i));
}

/** Jumps to `to` when reg compares (jeq / jne) with the word; a slot is read into TMP first. */
function cmpW(a: Asm, op: 'jeq' | 'jne', reg: Reg, w: W, to: string): void {
  if (typeof w === 'number') {
    a.jmp32(op, reg, { imm: w }, to);
  } else {
    a.ldx(4, TMP, LOC, w.at).jmp32(op, reg, TMP, to);
  }
}

/**
 * VAL = the socket's storage value (created zeroed if `create`); jumps to
 * `none` when it has none (or the kernel could not allocate one).
 */
function storage(a: Asm, create: boolean, none: string): void {
  a.ldMap(R1, MAP_SK)
    .ldx(8, R2, CTX, SA.sk)
    .mov64(R3, { imm: 0 })
    .mov64(R4, { imm: create ? BPF_SK_STORAGE_GET_F_CREATE : 0 });
  a.call(BPF_FUNC_SK_STORAGE_GET).jmp('jeq', R0, { imm: 0 }, none).mov64(VAL, R0);
}

/** Bind is about to rewrite: records the address the program asked for (`words` words at ctx[from]). */
function recordRequest(a: Asm, from: number, words: number): void {
  const done = a.newLabel('record.done');
  storage(a, true, done);
  for (let i = 0; i < words; i++) a.ldx(4, TMP, CTX, from + 4 * i).stx(4, VAL, STORE.requested + 4 * i, TMP);
  a.mov32(TMP, { imm: 1 }).stx(4, VAL, STORE.flags, TMP);
  a.label(done);
}

/** Jumps to `to` if reg equals any of the words. */
function jeqAny(a: Asm, reg: Reg, values: W[], to: string): void {
  for (const v of values) cmpW(a, 'jeq', reg, v, to);
}

/**
 * Jumps to `to` if the IPv4 address in reg (read from ctx[at]) is one of
 * the host's listed ones: immediates, or a lookup in the address set (the
 * call clobbers r1-r5: reg is read again after it).
 */
function hostDeny4(a: Asm, c: Shape, reg: Reg, at: number, to: string): void {
  if (c.deny4 !== 'set') {
    jeqAny(a, reg, c.deny4, to);
    return;
  }
  a.stx(4, R10, -4, reg);
  a.ldMap(R1, MAP_SET4).mov64(R2, R10).alu64('add', R2, { imm: -4 }).call(BPF_FUNC_MAP_LOOKUP_ELEM);
  a.jmp('jne', R0, { imm: 0 }, to);
  a.ldx(4, reg, CTX, at);
}

/** The same for the IPv6 address in W6 (read from ctx[at..at+16]); then the networks denied whole. */
function hostDeny6(a: Asm, c: Shape, at: number, to: string): void {
  if (c.deny6 !== 'set') {
    jeqAny6(a, c.deny6, to);
  } else {
    W6.forEach((r, i) => a.stx(4, R10, -16 + 4 * i, r));
    a.ldMap(R1, MAP_SET6).mov64(R2, R10).alu64('add', R2, { imm: -16 }).call(BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jmp('jne', R0, { imm: 0 }, to);
    load6(a, at);
  }
  for (const n of c.denyNets6) {
    const next = a.newLabel('net6');
    n.forEach((w, i) => {
      if (w.mask === 0) return;
      a.mov32(TMP, W6[i]).alu32('and', TMP, { imm: w.mask }).jmp32('jne', TMP, { imm: w.net }, next);
    });
    a.ja(to);
    a.label(next);
  }
}

/** Jumps to `to` if the IPv6 address in W6 equals any of the addresses. */
function jeqAny6(a: Asm, addrs: W[][], to: string): void {
  for (const w of addrs) {
    const next = a.newLabel('ne6');
    for (let i = 0; i < 3; i++) cmpW(a, 'jne', W6[i], w[i], next);
    cmpW(a, 'jeq', W6[3], w[3], to);
    a.label(next);
  }
}

/** Jumps to `to` if reg is inside any of the networks. */
function inNets(a: Asm, reg: Reg, nets: Net4[], to: string): void {
  for (const n of nets) {
    a.mov32(TMP, reg).alu32('and', TMP, { imm: n.mask }).jmp32('jeq', TMP, { imm: n.net }, to);
  }
}

/** Jumps to `notLoopback` unless reg is in 127.0.0.0/8. */
function unlessLoopback(a: Asm, reg: Reg, notLoopback: string): void {
  a.mov32(TMP, reg).alu32('and', TMP, { imm: 0xff }).jmp32('jne', TMP, { imm: 127 }, notLoopback);
}

/**
 * The IPv4 bind rule for the address in `addr`; a rewrite is written at
 * ctx[writeAt] (user_ip4, or the last word of a v4-mapped user_ip6).
 */
function bind4Rule(a: Asm, c: Shape, addr: Reg, writeAt: number, x: Exits, record: { from: number; words: number }): void {
  if (c.n4 === 0) {
    a.ja(x.deny); // no IPv4 address of its own: nothing to bind to
    return;
  }
  const rewrite = a.newLabel('bind.rewrite');
  a.jmp32('jeq', addr, { imm: 0 }, rewrite); // the wildcard
  jeqAny(a, addr, c.own4, x.allow);
  unlessLoopback(a, addr, x.deny); // a host or a neighbour's non-loopback address
  inNets(a, addr, c.peer4, x.deny); // a neighbour's loopback address
  a.label(rewrite); // the host's loopback: its 127.0.0.1 is its own first address
  recordRequest(a, record.from, record.words); // for getsockname
  store(a, writeAt, c.own4[0]);
  a.ja(x.allow);
}

/**
 * The IPv4 destination rule of connect and sendmsg; jumps to x.allow (the
 * caller then forces the source) or x.deny. hostDeny comes first: it may name
 * loopback addresses (a stand-in for the host's) and addresses inside the
 * peer networks (one kept back from every context).
 */
function dest4Rule(a: Asm, c: Shape, addr: Reg, writeAt: number, x: Exits, replies = false): void {
  const redirect = a.newLabel('dst.redirect');
  const beyond = a.newLabel('dst.beyond');
  a.jmp32('jeq', addr, { imm: 0 }, redirect); // 0.0.0.0 means "this host" to connect() and sendto()
  hostDeny4(a, c, addr, writeAt, x.deny);
  inNets(a, addr, c.denyNets4, x.deny); // a private network's contexts: only through their published ports
  unlessLoopback(a, addr, beyond);
  jeqAny(a, addr, c.own4, x.allow);
  inNets(a, addr, c.peer4, x.allow); // a neighbour
  if (replies) replySlot(a, writeAt, x.allow);
  a.label(redirect); // the host's loopback → its own
  if (c.n4 === 0) {
    a.ja(x.deny);
  } else {
    store(a, writeAt, c.own4[0]);
    a.ja(x.allow);
  }
  a.label(beyond);
  beyond4Rule(a, c, addr, x);
}

/**
 * A destination outside 127.0.0.0/8: as is, unless the context's primary
 * (its source) is a loopback address and the destination is none of the
 * host's (its own addresses, a neighbour's pool, a published host address):
 * a loopback source never leaves the host, and the kernel would answer a
 * bare EINVAL; refused here instead (EPERM), as the model forbids it.
 */
function beyond4Rule(a: Asm, c: Shape, addr: Reg, x: Exits): void {
  if (c.n4 === 0) {
    a.ja(x.allow); // no IPv4 address of its own: the host's source
    return;
  }
  loadW(a, TMP, c.own4[0]);
  a.alu32('and', TMP, { imm: 0xff }).jmp32('jne', TMP, { imm: 127 }, x.allow); // a routable primary: the world
  jeqAny(a, addr, c.own4, x.allow);
  jeqAny(a, addr, c.allow4, x.allow);
  inNets(a, addr, c.peer4, x.allow);
  a.ja(x.deny);
}

/**
 * sendmsg to the host's loopback: the answer to the host client this socket
 * last heard from (recvmsg recorded its address and port, at most
 * REPLY_WINDOW_NS ago) goes to it as is; falls through otherwise.
 */
function replySlot(a: Asm, destAt: number, answer: string): void {
  const no = a.newLabel('reply.no');
  storage(a, false, no);
  a.ldx(4, R1, VAL, STORE.replyAddr4).ldx(4, R2, CTX, destAt).jmp32('jne', R1, R2, no);
  a.ldx(4, R1, VAL, STORE.replyPort).ldx(4, R2, CTX, SA.user_port).jmp32('jne', R1, R2, no);
  a.call(BPF_FUNC_KTIME_GET_NS).ldx(8, R1, VAL, STORE.replySeen).alu64('sub', R0, R1);
  a.ldImm64(R1, REPLY_WINDOW_NS).jmp('jgt', R0, R1, no);
  a.ja(answer);
  a.label(no);
}

/**
 * recvmsg from a host loopback client (127.0.0.0/8 outside the pool and its
 * own addresses: nothing inside a context sends from there): remembers it
 * for replySlot. The v4 address is at ctx[from].
 */
function rememberClient(a: Asm, c: Shape, addr: Reg, from: number, done: string): void {
  unlessLoopback(a, addr, done);
  jeqAny(a, addr, c.own4, done);
  inNets(a, addr, c.peer4, done);
  storage(a, true, done);
  a.ldx(4, TMP, CTX, from).stx(4, VAL, STORE.replyAddr4, TMP);
  a.ldx(4, TMP, CTX, SA.user_port).stx(4, VAL, STORE.replyPort, TMP);
  a.call(BPF_FUNC_KTIME_GET_NS).stx(8, VAL, STORE.replySeen, R0);
  a.ja(done);
}

/**
 * Classifies the IPv6 address in W6: jumps to `mapped` (::ffff:a.b.c.d, the
 * v4 part in W6[3]), `local` (:: or ::1) or falls through (any other).
 */
function classify6(a: Asm, mapped: string, local: string): void {
  const other = a.newLabel('v6.other');
  const maybeMapped = a.newLabel('v6.maybe-mapped');
  a.jmp32('jne', W6[0], { imm: 0 }, other);
  a.jmp32('jne', W6[1], { imm: 0 }, other);
  a.jmp32('jne', W6[2], { imm: 0 }, maybeMapped);
  a.jmp32('jeq', W6[3], { imm: 0 }, local);
  a.jmp32('jeq', W6[3], { imm: LOOPBACK6[3] }, local);
  a.ja(other);
  a.label(maybeMapped);
  a.jmp32('jeq', W6[2], { imm: MAPPED_TAG }, mapped);
  a.label(other);
}

const mappedWords = (v4: W): W[] => [0, 0, MAPPED_TAG, v4];

/** bpf_bind(ctx, &sockaddr, len) with a sockaddr built on the stack; the result is ignored (EINVAL when already bound). */
function callBind4(a: Asm, addr: W): void {
  // struct sockaddr_in at fp-16: family, port 0, address, 8 zero bytes
  a.st(4, R10, -16, AF_INET);
  storeAt(a, R10, -12, addr);
  a.st(8, R10, -8, 0);
  a.mov64(R1, CTX).mov64(R2, R10).alu64('add', R2, { imm: -16 }).mov64(R3, { imm: 16 }).call(BPF_FUNC_BIND);
}

function callBind6(a: Asm, w: W[]): void {
  // struct sockaddr_in6 (28 bytes) at fp-32: family, port 0, flowinfo 0, address, scope id 0
  a.st(4, R10, -32, AF_INET6).st(4, R10, -28, 0);
  w.forEach((v, i) => (typeof v === 'number' ? a.st(4, R10, -24 + 4 * i, v) : storeAt(a, R10, -24 + 4 * i, v)));
  a.st(4, R10, -8, 0).st(4, R10, -4, 0);
  a.mov64(R1, CTX).mov64(R2, R10).alu64('add', R2, { imm: -32 }).mov64(R3, { imm: 28 }).call(BPF_FUNC_BIND);
}

function bind4(c: Shape): Buffer {
  const a = new Asm();
  const x = prologue(a, c, c.n4 > 0, 'deny');
  a.ldx(4, R2, CTX, SA.user_ip4);
  bind4Rule(a, c, R2, SA.user_ip4, x, { from: SA.user_ip4, words: 1 });
  return epilogue(a, x);
}

function bind6(c: Shape): Buffer {
  const a = new Asm();
  const x = prologue(a, c, true, 'deny');
  const mapped = a.newLabel('mapped');
  const wildcard = a.newLabel('wildcard');
  load6(a, SA.user_ip6);
  classify6(a, mapped, wildcard);
  jeqAny6(a, c.own6, x.allow);
  a.ja(x.deny);
  a.label(mapped); // the v4 rules, or binding ::ffff:127.0.0.1 would walk around them
  bind4Rule(a, c, W6[3], SA.user_ip6 + 12, x, { from: SA.user_ip6, words: 4 });
  a.label(wildcard); // :: and ::1
  recordRequest(a, SA.user_ip6, 4); // a context has at least one address of its own
  if (c.n6 > 0) store6(a, SA.user_ip6, c.own6[0]);
  else store6(a, SA.user_ip6, mappedWords(c.own4[0]));
  a.ja(x.allow);
  return epilogue(a, x);
}

function connectOrSend4(c: Shape, hook: 'connect4' | 'sendmsg4'): Buffer {
  const a = new Asm();
  const x = prologue(a, c, c.n4 > 0, 'deny');
  const source = a.newLabel('source');
  a.ldx(4, R2, CTX, SA.user_ip4);
  dest4Rule(a, c, R2, SA.user_ip4, { allow: source, deny: x.deny }, hook === 'sendmsg4');
  a.label(source);
  if (c.n4 > 0) {
    if (hook === 'connect4') {
      callBind4(a, c.own4[0]);
    } else {
      a.ldx(4, R2, CTX, SA.msg_src_ip4);
      jeqAny(a, R2, c.own4, x.allow);
      store(a, SA.msg_src_ip4, c.own4[0]);
    }
  }
  a.ja(x.allow);
  return epilogue(a, x);
}

function connectOrSend6(c: Shape, hook: 'connect6' | 'sendmsg6'): Buffer {
  const a = new Asm();
  const x = prologue(a, c, true, 'deny');
  const mapped = a.newLabel('mapped');
  const local = a.newLabel('local');
  const source6 = a.newLabel('source6');
  const source4 = a.newLabel('source4');
  load6(a, SA.user_ip6);
  hostDeny6(a, c, SA.user_ip6, x.deny);
  classify6(a, mapped, local);
  a.ja(source6);

  a.label(local); // ::1, and :: which connect() and sendto() take as ::1
  if (c.n6 === 0) {
    a.ja(x.deny);
  } else {
    store6(a, SA.user_ip6, c.own6[0]);
    a.ja(source6);
  }

  a.label(mapped); // the v4 rules, results stay mapped
  dest4Rule(a, c, W6[3], SA.user_ip6 + 12, { allow: source4, deny: x.deny });

  a.label(source6);
  if (c.n6 > 0) {
    if (hook === 'connect6') {
      callBind6(a, c.own6[0]);
    } else {
      load6(a, SA.msg_src_ip6);
      jeqAny6(a, c.own6, x.allow);
      store6(a, SA.msg_src_ip6, c.own6[0]);
    }
  }
  a.ja(x.allow);

  a.label(source4);
  // A mapped destination never reaches sendmsg6 (udpv6_sendmsg hands it to
  // udp_sendmsg, where sendmsg4 forces the source); connect6 binds the v4 source.
  if (hook === 'connect6' && c.n4 > 0) callBind6(a, mappedWords(c.own4[0]));
  a.ja(x.allow);
  return epilogue(a, x);
}

/**
 * recvmsg/getpeername: a peer that is the primary address shows as the
 * loopback the program used. Must return 1. recvmsg also remembers a host
 * loopback client (rememberClient).
 */
function peer4(c: Shape, hook: 'recvmsg4' | 'getpeername4'): Buffer {
  const a = new Asm();
  const x = prologue(a, c, c.n4 > 0, 'allow');
  a.ldx(4, R2, CTX, SA.user_ip4);
  if (c.n4 > 0) {
    const other = a.newLabel('other');
    cmpW(a, 'jne', R2, c.own4[0], other);
    store(a, SA.user_ip4, LOOPBACK4);
    a.ja(x.allow);
    a.label(other);
    if (hook === 'recvmsg4') rememberClient(a, c, R2, SA.user_ip4, x.allow);
  }
  a.ja(x.allow);
  return epilogue(a, x);
}

function peer6(c: Shape, hook: 'recvmsg6' | 'getpeername6'): Buffer {
  const a = new Asm();
  const x = prologue(a, c, true, 'allow');
  const v6 = a.newLabel('primary6');
  const v4 = a.newLabel('primary4');
  const mapped = a.newLabel('mapped');
  load6(a, SA.user_ip6);
  if (c.n6 > 0) jeqAny6(a, [c.own6[0]], v6);
  if (c.n4 > 0) jeqAny6(a, [mappedWords(c.own4[0])], v4);
  if (hook === 'recvmsg6' && c.n4 > 0) classify6(a, mapped, x.allow);
  a.ja(x.allow);
  a.label(v6);
  store6(a, SA.user_ip6, LOOPBACK6);
  a.ja(x.allow);
  a.label(v4);
  store(a, SA.user_ip6 + 12, LOOPBACK4);
  a.ja(x.allow);
  a.label(mapped); // a v4 datagram on a dual-stack socket: the sendmsg4 program answers it
  rememberClient(a, c, W6[3], SA.user_ip6 + 12, x.allow);
  return epilogue(a, x);
}

/**
 * getsockname: the primary address shows as what the program would see
 * without the wall. Connected to itself (its own "127.0.0.1"): the loopback,
 * as getpeername shows the other end; not connected: the address bind was
 * asked for (0.0.0.0, 127.0.0.1, ...), when bind recorded one. Must return 1.
 */
function sockname4(c: Shape): Buffer {
  const a = new Asm();
  const x = prologue(a, c, c.n4 > 0, 'allow');
  if (c.n4 > 0) {
    const unconnected = a.newLabel('unconnected');
    a.ldx(4, R2, CTX, SA.user_ip4);
    cmpW(a, 'jne', R2, c.own4[0], x.allow);
    a.ldx(8, SOCK, CTX, SA.sk).ldx(4, R2, SOCK, SK.dst_ip4);
    a.jmp32('jeq', R2, { imm: 0 }, unconnected);
    cmpW(a, 'jne', R2, c.own4[0], x.allow);
    store(a, SA.user_ip4, LOOPBACK4);
    a.ja(x.allow);
    a.label(unconnected);
    storage(a, false, x.allow);
    a.ldx(4, TMP, VAL, STORE.flags).jmp32('jeq', TMP, { imm: 0 }, x.allow);
    a.ldx(4, TMP, VAL, STORE.requested).stx(4, CTX, SA.user_ip4, TMP);
  }
  a.ja(x.allow);
  return epilogue(a, x);
}

function sockname6(c: Shape): Buffer {
  const a = new Asm();
  const x = prologue(a, c, true, 'allow');
  const primary = a.newLabel('primary');
  const unconnected = a.newLabel('unconnected');
  const self6 = a.newLabel('self6');
  const self4 = a.newLabel('self4');
  load6(a, SA.user_ip6);
  const prim: W[][] = [];
  if (c.n6 > 0) prim.push(c.own6[0]);
  if (c.n4 > 0) prim.push(mappedWords(c.own4[0]));
  jeqAny6(a, prim, primary);
  a.ja(x.allow);
  a.label(primary);
  a.ldx(8, SOCK, CTX, SA.sk);
  W6.forEach((r, i) => a.ldx(4, r, SOCK, SK.dst_ip6 + 4 * i));
  jeqAny6(a, [[0, 0, 0, 0]], unconnected);
  if (c.n6 > 0) jeqAny6(a, [c.own6[0]], self6);
  if (c.n4 > 0) jeqAny6(a, [mappedWords(c.own4[0])], self4);
  a.ja(x.allow);
  a.label(self6);
  store6(a, SA.user_ip6, LOOPBACK6);
  a.ja(x.allow);
  a.label(self4);
  store6(a, SA.user_ip6, mappedWords(LOOPBACK4));
  a.ja(x.allow);
  a.label(unconnected);
  storage(a, false, x.allow);
  a.ldx(4, TMP, VAL, STORE.flags).jmp32('jeq', TMP, { imm: 0 }, x.allow);
  for (let i = 0; i < 4; i++) a.ldx(4, TMP, VAL, STORE.requested + 4 * i).stx(4, CTX, SA.user_ip6 + 4 * i, TMP);
  a.ja(x.allow);
  return epilogue(a, x);
}

function programsOf(c: Shape): Record<SockAddrHook, Buffer> {
  return {
    bind4: bind4(c),
    bind6: bind6(c),
    connect4: connectOrSend4(c, 'connect4'),
    connect6: connectOrSend6(c, 'connect6'),
    sendmsg4: connectOrSend4(c, 'sendmsg4'),
    sendmsg6: connectOrSend6(c, 'sendmsg6'),
    recvmsg4: peer4(c, 'recvmsg4'),
    recvmsg6: peer6(c, 'recvmsg6'),
    getpeername4: peer4(c, 'getpeername4'),
    getpeername6: peer6(c, 'getpeername6'),
    getsockname4: sockname4(c),
    getsockname6: sockname6(c),
  };
}

/** Program sets assembled in this process, by what they are specialised on: a CLI call of many starts assembles once. */
const assembled = new Map<string, Readonly<Record<SockAddrHook, Buffer>>>();
const ASSEMBLED_MAX = 8;

function programsFor(c: Compiled): Readonly<Record<SockAddrHook, Buffer>> {
  const key = JSON.stringify([
    c.own4.length,
    c.own6.length,
    c.peer4,
    c.deny4.map((b) => b.toString('hex')),
    c.deny6.map((b) => b.toString('hex')),
    c.allow4,
    c.denyNets4,
    c.denyNets6,
  ]);
  let progs = assembled.get(key);
  if (progs === undefined) {
    progs = Object.freeze(programsOf(shapeOf(c)));
    if (assembled.size >= ASSEMBLED_MAX) assembled.delete(assembled.keys().next().value as string);
    assembled.set(key, progs);
  }
  return progs;
}

/**
 * A shared context's wall: the programs (the same bytes for every context
 * of the host with as many own addresses) and the storage value that gives
 * them its own addresses. Throws PaeneError('invalid-argument') on a bad policy.
 */
export function buildSockAddr(p: SockAddrPolicy): SockAddrWall {
  const c = compile(p);
  return { progs: programsFor(c), storage: storageOf(c), ...setsOf(c) };
}

/** Every hook's program for a policy's shape (see buildSockAddr). */
export function buildSockAddrPrograms(p: SockAddrPolicy): Readonly<Record<SockAddrHook, Buffer>> {
  return programsFor(compile(p));
}
