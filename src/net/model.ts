// A context's network: which model it uses and what it owns. Pure: the
// validation of `--net`, `--ip` and `--publish`, the per-root network
// settings (pools, bridge, published host addresses), and the choice of an
// address from a pool. The kernel side lives in src/net/.
//
//   shared   vserver's network context / a jail's ip4.addr: the host's stack,
//            but binds, connects and sends limited to its own addresses by
//            cgroup BPF programs; its 127.0.0.1 is its own first address
//   private  a network namespace of its own: a routed veth (the gateway on
//            paene0), NAT out, --publish in (an exclusive-IP zone, a VNET jail)
//   none     a network namespace with loopback only
//   host     the host's stack with no wall (privileged profile only)

import { isIPv4, isIPv6 } from 'node:net';
import {
  type BridgeConfig,
  DEFAULT_BRIDGE,
  type Publish,
  cidrContains,
  formatIPv4,
  formatPublish,
  hostRange4,
  parseIPv4,
  parsePublish,
  parseSubnet4,
  validateBridgeConfig,
} from './bridgeplan.js';
import { PaeneError } from '../model/errors.js';
import { formatIPv6, parseIPv6 } from './sockaddr.js';

export const NET_MODES = ['shared', 'private', 'none', 'host'] as const;
export type NetMode = (typeof NET_MODES)[number];

export interface NetSpec {
  mode: NetMode;
  /**
   * shared: the addresses it owns, IPv4 and IPv6 (the first of each family
   * is its primary); private: its address in the private subnet (one IPv4).
   * Empty in a spec means "assign one from the pool" (done at create).
   */
  addresses: string[];
  /** private: host ports forwarded to it */
  publish: Publish[];
  /**
   * Whether it reaches beyond the host (shared: an address of the root's
   * egress pool, source NAT to the host's address; private: its root's
   * masquerade). Absent: 'nat'. Changes live (`paene net egress`).
   */
  egress?: Egress;
  /**
   * shared and private: the nameservers of the resolv.conf it gets at start
   * (`create --dns`); absent: the root's (`net settings --dns`), else the
   * host's (src/net/resolv.ts).
   */
  dns?: string[];
}

export const EGRESS = ['nat', 'none'] as const;
export type Egress = (typeof EGRESS)[number];

export const DEFAULT_NET_MODE: NetMode = 'shared';
/** Addresses per family a shared context may own (the BPF programs compare them unrolled). */
export const MAX_ADDRESSES_PER_FAMILY = 16;

export function parseNetMode(s: string): NetMode {
  const m = s.trim().toLowerCase();
  if (!(NET_MODES as readonly string[]).includes(m)) {
    throw new PaeneError('invalid-argument', `unknown network mode '${s}': use ${NET_MODES.join(', ')}`);
  }
  return m as NetMode;
}

/** An IP address in canonical form (IPv6 lower-case, compressed); anything else is an error. */
export function canonicalIp(s: string): string {
  const t = s.trim();
  if (isIPv4(t)) return t.split('.').map(Number).join('.');
  const v6 = isIPv6(t) && !t.includes('%') ? parseIPv6(t) : undefined;
  if (v6) return formatIPv6(v6);
  throw new PaeneError('invalid-argument', `invalid IP address '${s}': use dotted IPv4 (127.77.0.2) or IPv6 (fd00::2)`);
}

/** glibc reads at most 3 nameservers (MAXNS). */
export const MAX_NAMESERVERS = 3;

/** Whether a nameserver is on the host's loopback (or the wildcard): inside a context that is its own, where nothing answers. */
export function isLoopbackResolver(ip: string): boolean {
  return ip.startsWith('127.') || ip === '0.0.0.0' || ip === '::1' || ip === '::' || ip.startsWith('::ffff:127.');
}

/** Nameservers given by the user (`--dns IP[,IP]`): canonical, no loopback, at most 3. */
export function parseDnsList(list: readonly string[], where = '--dns'): string[] {
  const ips = [
    ...new Set(
      list
        .flatMap((s) => s.split(','))
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ].map(canonicalIp);
  for (const ip of ips) {
    if (isLoopbackResolver(ip))
      throw new PaeneError(
        'invalid-argument',
        `${where} ${ip}: a loopback address inside a context is its own (its 127.0.0.1), not the host's resolver; give a resolver it can reach`,
      );
  }
  if (ips.length > MAX_NAMESERVERS)
    throw new PaeneError('invalid-argument', `${where}: at most ${MAX_NAMESERVERS} nameservers (glibc reads no more)`);
  return ips;
}

export const familyOf = (addr: string): 4 | 6 => (addr.includes(':') ? 6 : 4);

/** An IPv4 address as a number (pools hand them out lowest first); undefined for IPv6 or anything else. */
export function ipv4Number(addr: string): number | undefined {
  return isIPv4(addr) ? parseIPv4(addr) : undefined;
}

/** What `--net`, `--ip` and `--publish` ask for, checked against each other. */
export function netSpecFrom(o: { mode?: string; ips?: string[]; publish?: string[]; egress?: string; dns?: string[] }): NetSpec {
  const mode = o.mode === undefined ? DEFAULT_NET_MODE : parseNetMode(o.mode);
  const addresses = dedupe((o.ips ?? []).map(canonicalIp));
  const publish = (o.publish ?? []).map(parsePublish);
  const dns = o.dns !== undefined && o.dns.length > 0 ? { dns: parseDnsList(o.dns) } : {};
  return validateNetSpec({ mode, addresses, publish, ...(o.egress !== undefined ? { egress: o.egress } : {}), ...dns }, 'network');
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** Checks a spec (from flags or a config file): addresses fit the mode, publishing only where it means something. */
export function validateNetSpec(x: unknown, where: string): NetSpec {
  const bad = (why: string) => new PaeneError('invalid-argument', `${where}: ${why}`);
  const o = x as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null) throw bad('must be an object with mode, addresses and publish');
  const mode = parseNetMode(String(o.mode));
  if (!Array.isArray(o.addresses ?? [])) throw bad(`'addresses' must be a list`);
  if (!Array.isArray(o.publish ?? [])) throw bad(`'publish' must be a list`);
  const addresses = dedupe(((o.addresses as unknown[]) ?? []).map((a) => canonicalIp(String(a))));
  const publish = ((o.publish as unknown[]) ?? []).map((p) =>
    typeof p === 'string' ? parsePublish(p) : parsePublish(formatPublish(p as Publish)),
  );
  if (o.egress !== undefined && !(EGRESS as readonly unknown[]).includes(o.egress))
    throw bad(`unknown egress '${String(o.egress)}': use ${EGRESS.join(' or ')}`);
  const egress = o.egress as Egress | undefined;
  if (egress !== undefined && mode !== 'shared' && mode !== 'private')
    throw bad(`--egress is for shared and private contexts (a ${mode} context has no way out to choose)`);
  if (o.dns !== undefined && !Array.isArray(o.dns)) throw bad(`'dns' must be a list of nameservers`);
  const dns = o.dns === undefined ? undefined : parseDnsList((o.dns as unknown[]).map(String), `${where}: dns`);
  if (dns !== undefined && mode !== 'shared' && mode !== 'private')
    throw bad(`--dns is for shared and private contexts (a ${mode} context has no resolver to reach but its own)`);
  if ((mode === 'host' || mode === 'none') && addresses.length > 0)
    throw bad(`a context with --net ${mode} owns no address (--ip is for shared and private)`);
  if (mode !== 'private' && publish.length > 0)
    throw bad(`--publish needs --net private (a shared context serves on its own address directly)`);
  if (mode === 'private' && (addresses.length > 1 || addresses.some((a) => familyOf(a) !== 4))) {
    throw bad('a private context has one IPv4 address, in the private subnet');
  }
  for (const fam of [4, 6] as const) {
    const n = addresses.filter((a) => familyOf(a) === fam).length;
    if (n > MAX_ADDRESSES_PER_FAMILY) throw bad(`at most ${MAX_ADDRESSES_PER_FAMILY} IPv${fam} addresses per context (got ${n})`);
  }
  const hostPorts = new Set<string>();
  for (const p of publish) {
    const k = `${p.hostPort}/${p.proto}`;
    if (hostPorts.has(k)) throw bad(`host port ${k} is published twice`);
    hostPorts.add(k);
  }
  return { mode, addresses, publish, ...(egress !== undefined ? { egress } : {}), ...(dns !== undefined && dns.length > 0 ? { dns } : {}) };
}

export const primaryOf = (spec: NetSpec, fam: 4 | 6): string | undefined => spec.addresses.find((a) => familyOf(a) === fam);

/** Why `host` is refused, or undefined when the profile allows it. */
export function hostModeRefusal(profile: string): string | undefined {
  return profile === 'privileged'
    ? undefined
    : `--net host gives the context the host's whole network stack with no wall (it can bind the host's ports and reach its loopback services); it needs --caps privileged, not '${profile}'`;
}

// ---------------------------------------------------------------- settings

/** Per state root: where addresses come from and what contexts may reach ($ROOT/net.json). */
export interface NetSettings {
  /** the pool shared contexts get addresses from (IPv4 CIDR) */
  sharedPool4: string;
  /** the bridge, its subnet (private contexts' pool) and NAT */
  bridge: BridgeConfig;
  /** host addresses (not loopback) that contexts may connect to; the host's other addresses are refused */
  published: string[];
  /**
   * The network namespace (a path such as /run/netns/NAME) the bridge,
   * veths and NAT live in; absent: the host's own. Tests set it so that
   * nothing touches the machine's real network.
   */
  hostNetns?: string;
  /**
   * The bridge and subnet were given by the administrator (`net settings
   * --bridge/--subnet`): a clash with another root or the host is refused,
   * not avoided by choosing others.
   */
  bridgeGiven?: boolean;
  /**
   * A routable pool for shared contexts (IPv4 CIDR): when set, new shared
   * contexts get their address from it instead of sharedPool4, the pool is
   * local on the `paene-egress` link and their traffic out is masqueraded
   * to the host's address (docs/network.md, "Egress").
   */
  egressPool4?: string;
  /**
   * The root picks its egress pool itself (the default of a root without a
   * net.json): at the first create of a shared context from the pool, a free
   * private range that overlaps no route or address of the host and no other
   * root's claim, recorded in egressPool4. A net.json without this field
   * (written before egress was the default, or `--egress-pool none|CIDR`)
   * keeps what it says.
   */
  egressAuto?: boolean;
  /** Nameservers for the resolv.conf of the root's contexts that reach the world (`net settings --dns`); absent: the host's. */
  dns?: string[];
}

/** `net settings --egress-pool`: auto (the default), none (the 127.x pool, cut off from the world) or a CIDR. */
export function egressPoolChange(v: string): Pick<NetSettings, 'egressPool4' | 'egressAuto'> {
  const t = v.trim().toLowerCase();
  if (t === 'auto') return { egressAuto: true };
  if (t === 'none') return { egressPool4: undefined, egressAuto: false };
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(t))
    throw new PaeneError('invalid-argument', `--egress-pool '${v}': use auto, none or an IPv4 CIDR such as 10.77.0.0/16`);
  return { egressPool4: t, egressAuto: false };
}

/** The egress pools a root picks from (`auto`), in order: 10.77.0.0/16 to 10.87.0.0/16 (below paene's private subnets), then 10.60-76. */
export function egressPoolCandidates(): string[] {
  const out: string[] = [];
  for (let b = 77; b <= 87; b++) out.push(`10.${b}.0.0/16`);
  for (let b = 60; b <= 76; b++) out.push(`10.${b}.0.0/16`);
  return out;
}

/**
 * The default shared pool: 127.77.0.0/16 for the default state root, and a
 * /16 of its own for other roots (so two roots' contexts never own the same
 * address). 127.0.0.0/8 is local on every Linux host, so these work with
 * no interface configuration; addresses outside it must be on a host
 * interface already (`ip addr add`), which paene checks at start.
 */
export function defaultNetSettings(rootTag?: string): NetSettings {
  const second = rootTag === undefined ? 77 : 100 + (parseInt(rootTag.slice(0, 6), 16) % 150);
  return { sharedPool4: `127.${second}.0.0/16`, bridge: DEFAULT_BRIDGE, published: [], egressAuto: true };
}

export function validateNetSettings(x: unknown, defaults: NetSettings, where: string): NetSettings {
  const bad = (why: string) => new PaeneError('invalid-argument', `${where}: ${why}`);
  if (typeof x !== 'object' || x === null) throw bad('not a JSON object');
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['sharedPool4', 'bridge', 'published', 'hostNetns', 'bridgeGiven', 'egressPool4', 'egressAuto', 'dns'].includes(k))
      throw bad(`unknown field '${k}' (expected sharedPool4, bridge, published, hostNetns, bridgeGiven, egressPool4, egressAuto, dns)`);
  }
  if (o.egressAuto !== undefined && typeof o.egressAuto !== 'boolean') throw bad(`egressAuto must be true or false`);
  const s: NetSettings = {
    sharedPool4: typeof o.sharedPool4 === 'string' ? o.sharedPool4 : defaults.sharedPool4,
    bridge: o.bridge === undefined ? defaults.bridge : { ...defaults.bridge, ...(o.bridge as Partial<BridgeConfig>) },
    published: Array.isArray(o.published) ? o.published.map((a) => canonicalIp(String(a))) : defaults.published,
    ...(typeof o.hostNetns === 'string' ? { hostNetns: o.hostNetns } : defaults.hostNetns ? { hostNetns: defaults.hostNetns } : {}),
    ...(o.bridgeGiven === true ? { bridgeGiven: true } : {}),
    ...(typeof o.egressPool4 === 'string' ? { egressPool4: o.egressPool4 } : {}),
    // not from the defaults: a net.json without it was written before egress was the default and keeps 127.x
    ...(o.egressAuto === true ? { egressAuto: true } : {}),
    ...(Array.isArray(o.dns) && o.dns.length > 0 ? { dns: parseDnsList(o.dns.map(String), `${where}: dns`) } : {}),
  };
  if (s.egressPool4 !== undefined) {
    parseSubnet4(s.egressPool4);
    if (cidrContains('127.0.0.0/8', s.egressPool4.split('/')[0] as string))
      throw bad(`egress pool ${s.egressPool4} is on 127.0.0.0/8, which Linux never routes off the host: give a private range`);
  }
  validateBridgeConfig(s.bridge);
  parseSubnet4(s.sharedPool4);
  return s;
}

/** Where a new shared or private context's address comes from: its mode's pool, lowest first, the first host address kept back. */
export function addressPool(mode: NetMode, settings: NetSettings): ({ cidr: string } & ReturnType<typeof hostRange4>) | undefined {
  const cidr =
    mode === 'shared' ? (settings.egressPool4 ?? settings.sharedPool4) : mode === 'private' ? settings.bridge.subnet4 : undefined;
  return cidr === undefined ? undefined : { cidr, ...hostRange4(cidr, [reservedAddressOf(cidr)]) };
}

/** The pool's first host address is kept back (the bridge's gateway; in a shared pool, a stand-in for the host). */
export function reservedAddressOf(cidr: string): string {
  return formatIPv4(parseSubnet4(cidr).gateway);
}

/** Whether a shared context's address lies in the pool (others must be local to the host already). */
export function inPool(settings: NetSettings, addr: string): boolean {
  return familyOf(addr) === 4 && cidrContains(settings.sharedPool4, addr);
}

/** Whether a shared context's address lies in the root's egress pool (local on paene-egress, NAT out). */
export function inEgressPool(settings: NetSettings, addr: string): boolean {
  return settings.egressPool4 !== undefined && familyOf(addr) === 4 && cidrContains(settings.egressPool4, addr);
}

/** Whether a context reaches beyond the host when it can (the default: nat). */
export const egressOf = (spec: NetSpec): Egress => spec.egress ?? 'nat';

/**
 * The known gaps of a model's wall (docs/network.md, "What shared mode does
 * not hide"), for status; undefined when there are none.
 */
export function netGaps(spec: NetSpec): string[] | undefined {
  if (spec.mode === 'host') return ["no wall: the host's whole network stack"];
  if (spec.mode !== 'shared') return undefined;
  return [
    "/proc/net/* lists the host's sockets (the shared stack's tables; hiding them needs a BPF LSM hook this kernel may refuse)",
    'a socket that sends UDP without bind is bound to the wildcard on an ephemeral port (its source is still its own)',
  ];
}

export function describeNet(spec: NetSpec): string {
  if (spec.mode === 'shared' || spec.mode === 'private') {
    const pub = spec.publish.map(formatPublish).join(',');
    return `${spec.mode} ${spec.addresses.join(',') || '(unassigned)'}${pub ? ` publish ${pub}` : ''}${spec.egress === 'none' ? ' egress none' : ''}${spec.dns ? ` dns ${spec.dns.join(',')}` : ''}`;
  }
  return spec.mode === 'host' ? 'host (no wall)' : 'none (loopback only)';
}
