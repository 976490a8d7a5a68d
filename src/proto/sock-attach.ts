// The BPF loader's program list (src/native/sockattach.c): what the runtime
// hands paene-bpf (kernel/bpf.ts) and the monitor of paene-helper (a start
// request's --bpf-prog values), one argument each:
//
//   [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX...
//
// sk-storage makes the socket storage map the programs share (BYTES per
// socket), cg-storage the cgroup storage map and its value for the cgroup
// attached to; addr-set4 and addr-set6 each a hash map whose keys are the
// 4-byte (16-byte) addresses HEX lists one after another (the programs look
// an address up in it: the host's own addresses, src/net/sockaddr.ts);
// TYPE=HEX is a program (its eBPF instructions in hex) for the attach type
// named TYPE. The names travel, not numbers: the generated
// header (dist/gen/sock_attach_list.h) maps each to the kernel's enum
// bpf_attach_type and enum bpf_prog_type constants from <linux/bpf.h>, so
// no side spells an attach type number. paene-bpf echo parses a list and
// prints it back (test/unit/proto.test.ts round-trips it); paene-bpf types
// prints the numbers the system headers gave.

/** One attach type the loader knows: its name on the wire and its constants in <linux/bpf.h>. */
export interface AttachType {
  readonly name: string;
  /** enum bpf_attach_type */
  readonly attach: string;
  /** enum bpf_prog_type of a program for it */
  readonly prog: string;
}

export const SOCK_ATTACH_LIST = {
  name: 'sock_attach_list',
  doc: 'runtime -> paene-bpf, paene-helper: [sk-storage=BYTES] [cg-storage=HEX] [addr-set4=HEX] [addr-set6=HEX] TYPE=HEX..., one argument each',
  skStorage: 'sk-storage',
  cgStorage: 'cg-storage',
  addrSet4: 'addr-set4',
  addrSet6: 'addr-set6',
  /**
   * addr-set4/addr-set6: 1 to this many addresses each (a hash map's
   * entries). An argument of execve is at most 128 KiB (MAX_ARG_STRLEN):
   * 4000 IPv6 addresses in hex are 125 KiB.
   */
  maxAddrSet: 4000,
  maxProgs: 32,
  /** sk-storage: a multiple of 4 bytes (an int array), at most this */
  maxSkStorage: 256,
  /** cg-storage: 1 byte to this */
  maxCgStorage: 4096,
  types: [
    { name: 'bind4', attach: 'BPF_CGROUP_INET4_BIND', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'bind6', attach: 'BPF_CGROUP_INET6_BIND', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'connect4', attach: 'BPF_CGROUP_INET4_CONNECT', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'connect6', attach: 'BPF_CGROUP_INET6_CONNECT', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'sendmsg4', attach: 'BPF_CGROUP_UDP4_SENDMSG', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'sendmsg6', attach: 'BPF_CGROUP_UDP6_SENDMSG', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'recvmsg4', attach: 'BPF_CGROUP_UDP4_RECVMSG', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'recvmsg6', attach: 'BPF_CGROUP_UDP6_RECVMSG', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'getpeername4', attach: 'BPF_CGROUP_INET4_GETPEERNAME', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'getpeername6', attach: 'BPF_CGROUP_INET6_GETPEERNAME', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'getsockname4', attach: 'BPF_CGROUP_INET4_GETSOCKNAME', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    { name: 'getsockname6', attach: 'BPF_CGROUP_INET6_GETSOCKNAME', prog: 'BPF_PROG_TYPE_CGROUP_SOCK_ADDR' },
    // paene-runc's device rules on cgroup v2 (oci/resources.ts)
    { name: 'device', attach: 'BPF_CGROUP_DEVICE', prog: 'BPF_PROG_TYPE_CGROUP_DEVICE' },
  ],
} as const satisfies { types: readonly AttachType[] } & Record<string, unknown>;

/** The name of an attach type the loader knows. */
export type AttachName = (typeof SOCK_ATTACH_LIST.types)[number]['name'];

/** A program list as data: the storage maps and the programs, in the order they go to the kernel. */
export interface SockAttachList {
  /** bytes per socket of the shared socket storage map (absent: none) */
  skStorage?: number;
  /** the cgroup storage value (absent: no cgroup storage map) */
  cgStorage?: Buffer;
  /** the keys of the IPv4 address set, 4 bytes each, distinct (absent: no such map) */
  addrSet4?: Buffer;
  /** the keys of the IPv6 address set, 16 bytes each, distinct (absent: no such map) */
  addrSet6?: Buffer;
  progs: readonly (readonly [type: AttachName, insns: Buffer])[];
}

/** Why a list cannot be written or read. */
export class SockAttachError extends Error {}

const L = SOCK_ATTACH_LIST;
const isName = (s: string): s is AttachName => L.types.some((t) => t.name === s);

/** The arguments of a list, each part checked against the description. */
export function sockAttachArgs(l: SockAttachList): string[] {
  return [...storageArgs(l), ...progArgs(l.progs)];
}

/** The list's map arguments (sk-storage=BYTES, cg-storage=HEX, addr-set4=HEX, addr-set6=HEX), checked. */
export function storageArgs(l: Pick<SockAttachList, 'skStorage' | 'cgStorage' | 'addrSet4' | 'addrSet6'>): string[] {
  const out: string[] = [];
  if (l.skStorage !== undefined) {
    if (!Number.isInteger(l.skStorage) || l.skStorage <= 0 || l.skStorage % 4 !== 0 || l.skStorage > L.maxSkStorage)
      throw new SockAttachError(`${L.skStorage}: a multiple of 4 bytes up to ${L.maxSkStorage}, not ${l.skStorage}`);
    out.push(`${L.skStorage}=${l.skStorage}`);
  }
  if (l.cgStorage !== undefined) {
    if (l.cgStorage.length === 0 || l.cgStorage.length > L.maxCgStorage)
      throw new SockAttachError(`${L.cgStorage}: 1 to ${L.maxCgStorage} bytes, not ${l.cgStorage.length}`);
    out.push(`${L.cgStorage}=${l.cgStorage.toString('hex')}`);
  }
  for (const [key, set, size] of [
    [L.addrSet4, l.addrSet4, 4],
    [L.addrSet6, l.addrSet6, 16],
  ] as const) {
    if (set === undefined) continue;
    const n = set.length / size;
    if (!Number.isInteger(n) || n < 1 || n > L.maxAddrSet)
      throw new SockAttachError(`${key}: 1 to ${L.maxAddrSet} addresses of ${size} bytes, not ${set.length} bytes`);
    out.push(`${key}=${set.toString('hex')}`);
  }
  return out;
}

/** The list's programs (TYPE=HEX, in the order given), checked: 1 to maxProgs, known types, whole instructions. */
export function progArgs(progs: SockAttachList['progs']): string[] {
  if (progs.length === 0) throw new SockAttachError('no programs given');
  if (progs.length > L.maxProgs) throw new SockAttachError(`more than ${L.maxProgs} programs`);
  return progs.map(([type, insns]) => {
    if (!isName(type)) throw new SockAttachError(`'${type}' is not an attach type the loader knows`);
    if (insns.length === 0 || insns.length % 8 !== 0)
      throw new SockAttachError(`the ${type} program is ${insns.length} bytes, not whole eBPF instructions`);
    return `${type}=${insns.toString('hex')}`;
  });
}

const HEX = /^(?:[0-9a-f]{2})+$/;

/** Arguments back into a list (a native echo's output): the inverse of sockAttachArgs. */
export function parseSockAttachArgs(argv: readonly string[]): SockAttachList {
  let i = 0;
  const l: { skStorage?: number; cgStorage?: Buffer; addrSet4?: Buffer; addrSet6?: Buffer; progs: [AttachName, Buffer][] } = {
    progs: [],
  };
  const value = (a: string | undefined, key: string) => (a?.startsWith(`${key}=`) ? a.slice(key.length + 1) : undefined);
  const sk = value(argv[i], L.skStorage);
  if (sk !== undefined) {
    if (!/^[1-9]\d*$/.test(sk)) throw new SockAttachError(`${L.skStorage}: '${sk}' is not a byte count`);
    l.skStorage = Number(sk);
    i++;
  }
  const cg = value(argv[i], L.cgStorage);
  if (cg !== undefined) {
    if (!HEX.test(cg)) throw new SockAttachError(`${L.cgStorage}: not hex`);
    l.cgStorage = Buffer.from(cg, 'hex');
    i++;
  }
  for (const [key, field] of [
    [L.addrSet4, 'addrSet4'],
    [L.addrSet6, 'addrSet6'],
  ] as const) {
    const set = value(argv[i], key);
    if (set === undefined) continue;
    if (!HEX.test(set)) throw new SockAttachError(`${key}: not hex`);
    l[field] = Buffer.from(set, 'hex');
    i++;
  }
  for (; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.indexOf('=');
    const type = eq < 0 ? a : a.slice(0, eq);
    if (!isName(type)) throw new SockAttachError(`expected TYPE=HEX, got '${a.slice(0, 40)}'`);
    const hex = a.slice(eq + 1);
    if (eq < 0 || !HEX.test(hex)) throw new SockAttachError(`${type}: the program is not hex`);
    l.progs.push([type, Buffer.from(hex, 'hex')]);
  }
  sockAttachArgs(l); // the same checks as the writer's
  return l;
}

/** The C header (dist/gen/sock_attach_list.h): the prefixes, the bounds, and the attach types by name. */
export function sockAttachHeader(source: string): string {
  const P = 'SOCK_ATTACH';
  return [
    `/* Generated from ${source} by scripts/build-helper.js: do not edit. */`,
    `/* ${L.doc} */`,
    '#ifndef GEN_SOCK_ATTACH_LIST_H',
    '#define GEN_SOCK_ATTACH_LIST_H',
    '#include <linux/bpf.h>',
    `#define ${P}_SK_STORAGE "${L.skStorage}="`,
    `#define ${P}_CG_STORAGE "${L.cgStorage}="`,
    `#define ${P}_ADDR_SET4 "${L.addrSet4}="`,
    `#define ${P}_ADDR_SET6 "${L.addrSet6}="`,
    `#define ${P}_MAX_ADDR_SET ${L.maxAddrSet}`,
    `#define ${P}_MAX_PROGS ${L.maxProgs}`,
    `#define ${P}_MAX_SK_STORAGE ${L.maxSkStorage}`,
    `#define ${P}_MAX_CG_STORAGE ${L.maxCgStorage}`,
    "/* an attach type by its name on the wire; the numbers are the kernel headers' */",
    'struct sock_attach_type {',
    '  const char *name;',
    '  enum bpf_attach_type attach;',
    '  enum bpf_prog_type prog;',
    '};',
    `#define ${P}_TYPES ${L.types.length}`,
    `__attribute__((unused)) static const struct sock_attach_type sock_attach_types[${P}_TYPES] = {`,
    ...L.types.map((t) => `  {"${t.name}", ${t.attach}, ${t.prog}},`),
    '};',
    '#endif',
    '',
  ].join('\n');
}
