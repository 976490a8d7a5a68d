// Planning of `private` network contexts: a context with a network stack of
// its own, joined to the host by a veth pair whose host end (its port) is
// routed: the context's address is a /32 route on its port, as a jail's or a
// vserver's address is a route of the host's. Pure: names, addresses, MACs,
// --publish parsing, an IPv4 address pool and the whole nftables ruleset as
// text. src/net/bridge.ts carries a plan out with ip(8) and nft(8).
//
// Routed, not bridged: a bridge costs each packet a second device and a
// forwarding-database lookup (measured: request latency 0.87x the host's on
// a bridge, 0.91-0.93x routed; docs/network.md). The guests still see one
// subnet: the port answers ARP for the other guests' addresses (proxy ARP)
// and the host routes between them. The device named like a bridge
// (paene0) holds the gateway's address and the subnet's route; no port is
// enslaved to it.
//
// The ruleset is always generated whole and loaded with one `nft -f`, which
// the kernel applies as one transaction: there is never a moment where half
// of the rules (e.g. a port without its anti-spoofing chain) are in place.

import { PaeneError } from '../model/errors.js';
import { parseXid, validateName } from '../model/names.js';
import { ANY_PORT_RE, PORT_PREFIX_RE } from '../model/subnets.js';

export interface BridgeConfig {
  /** the gateway's link in the host's network namespace (a bridge device without ports: the subnet's address and route) */
  bridge: string;
  /** IPv4 subnet of the private network, e.g. '10.88.0.0/16'; the gateway is its first host address */
  subnet4: string;
  /** nftables table name (inet and netdev family); default 'paene' */
  table?: string;
  /** host-side veth names are PREFIX<xid>: 'pn' (the default) or 'p<N>n' (model/subnets.ts netNamesOf) */
  portPrefix?: string;
}

export const DEFAULT_BRIDGE: BridgeConfig = { bridge: 'paene0', subnet4: '10.88.0.0/16' };

export const tableOf = (cfg: BridgeConfig): string => cfg.table ?? NFT_TABLE;
export const portPrefixOf = (cfg: BridgeConfig): string => cfg.portPrefix ?? HOST_IF_PREFIX;
/** A root's port names: its prefix and an xid (pn7, p3n12). */
export const portRe = (cfg: BridgeConfig): RegExp => new RegExp(`^${portPrefixOf(cfg)}\\d+$`);

export interface Publish {
  hostPort: number;
  port: number;
  proto: 'tcp' | 'udp';
}

export interface PrivateNetPlan {
  bridge: string;
  gateway4: string;
  prefix: number;
  address4: string;
  mac: string;
  /** host end of the veth pair: its port, with the route to the address */
  hostIf: string;
  /** the guest end, inside the context's namespace */
  guestIf: 'eth0';
  publish: Publish[];
  /** 'none': nothing it starts leaves the private network (answers to connections made to it still do) */
  egress?: 'nat' | 'none';
}

/** Linux's IFNAMSIZ is 16 with the terminating NUL. */
export const IFNAME_MAX = 15;
/** Prefix of the host-side veth names of the default name set; `leftovers` recognises a root's by its own prefix. */
export const HOST_IF_PREFIX = 'pn';
/** Any root's host-side veth (pnXID, p<N>nXID). */
export const HOST_IF_RE = ANY_PORT_RE;
/** nftables table name, used in both the inet and the netdev family. */
export const NFT_TABLE = 'paene';
/**
 * The device group of every root's ports (ip link set group): the egress
 * pool's wall matches a private network's port by it, whatever its root's
 * prefix. 0x70616e65, "paen": no other software is known to use it.
 */
export const PORT_GROUP = 0x70616e65;

// Interface names end up in `ip` arguments and in nft text: allow only
// characters that need no quoting anywhere (and no '/', ':' or spaces, which
// the kernel refuses anyway).
const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function invalid(msg: string): PaeneError {
  return new PaeneError('invalid-argument', msg);
}

export function validateIfName(name: string, what = 'interface name'): string {
  if (name.length > IFNAME_MAX || !IFNAME_RE.test(name)) {
    throw invalid(
      `invalid ${what} '${name}': 1-${IFNAME_MAX} characters, letters, digits, '_', '.' and '-', starting with a letter or digit`,
    );
  }
  return name;
}

// ---------------------------------------------------------------- IPv4

/** Dotted quad → 32-bit unsigned number. Leading zeros are refused: '010' is octal to some tools, decimal to others. */
export function parseIPv4(s: string, what = 'IPv4 address'): number {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) {
    throw invalid(`invalid ${what} '${s}': expected four numbers 0-255 separated by dots, e.g. 10.88.0.2`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Subnet4 {
  network: number;
  prefix: number;
  broadcast: number;
  /** first host address: the bridge's own */
  gateway: number;
}

/**
 * 'A.B.C.D/N' with N from 8 to 30 and no host bits set. /31 and /32 have no
 * room for a gateway and a guest; below /8 is surely a typo.
 */
export function parseSubnet4(cidr: string): Subnet4 {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) throw invalid(`invalid subnet '${cidr}': expected an IPv4 network in CIDR form, e.g. 10.88.0.0/16`);
  const addr = parseIPv4(m[1] as string, 'subnet address');
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw invalid(`invalid subnet '${cidr}': the prefix length must be from 8 to 30`);
  const size = 2 ** (32 - prefix);
  const network = addr - (addr % size);
  if (network !== addr) {
    throw invalid(`invalid subnet '${cidr}': host bits are set; did you mean ${formatIPv4(network)}/${prefix}?`);
  }
  return { network, prefix, broadcast: network + size - 1, gateway: network + 1 };
}

export function cidrContains(cidr: string, addr: string): boolean {
  const s = parseSubnet4(cidr);
  const a = parseIPv4(addr);
  return a >= s.network && a <= s.broadcast;
}

/**
 * The host addresses of `cidr` a pool hands out, as numbers, lowest first:
 * never the network or broadcast address, nor the reserved ones (the
 * gateway: see `gateway4Of`). Pure: the runtime claims from it.
 */
export function hostRange4(cidr: string, reserved: Iterable<string> = []): { first: number; last: number; skip: Set<number> } {
  const s = parseSubnet4(cidr);
  return { first: s.network + 1, last: s.broadcast - 1, skip: new Set([...reserved].map((a) => parseIPv4(a))) };
}

export function gateway4Of(cfg: BridgeConfig): string {
  return formatIPv4(parseSubnet4(cfg.subnet4).gateway);
}

export function validateBridgeConfig(cfg: BridgeConfig): Subnet4 {
  validateIfName(cfg.bridge, 'bridge name');
  if (HOST_IF_RE.test(cfg.bridge))
    throw invalid(`invalid bridge name '${cfg.bridge}': names like ${HOST_IF_PREFIX}N are the contexts' veth ports`);
  if (cfg.table !== undefined && !/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(cfg.table))
    throw invalid(`invalid nft table name '${cfg.table}': a letter, then up to 31 letters, digits or '_'`);
  if (cfg.portPrefix !== undefined && !PORT_PREFIX_RE.test(cfg.portPrefix))
    throw invalid(`invalid veth prefix '${cfg.portPrefix}': expected pn or p<N>n`);
  return parseSubnet4(cfg.subnet4);
}

// ---------------------------------------------------------------- publish

const PORT_RE = /^[1-9]\d{0,4}$/;

function parsePort(s: string, what: string, whole: string): number {
  const n = PORT_RE.test(s) ? Number(s) : NaN;
  if (!(n >= 1 && n <= 65535)) throw invalid(`invalid --publish '${whole}': ${what} must be a port number from 1 to 65535`);
  return n;
}

/** 'HOSTPORT:PORT', 'HOSTPORT:PORT/tcp', 'HOSTPORT:PORT/udp'. */
export function parsePublish(s: string): Publish {
  const m = /^([^:/]*):([^:/]*)(?:\/(.*))?$/.exec(s.trim());
  if (!m) throw invalid(`invalid --publish '${s}': expected HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 5353:53/udp`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (proto !== 'tcp' && proto !== 'udp') throw invalid(`invalid --publish '${s}': the protocol must be tcp or udp`);
  return { hostPort: parsePort(m[1] as string, 'HOSTPORT', s), port: parsePort(m[2] as string, 'PORT', s), proto };
}

export function formatPublish(p: Publish): string {
  return `${p.hostPort}:${p.port}/${p.proto}`;
}

function validatePublish(p: Publish): Publish {
  for (const n of [p.hostPort, p.port]) {
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw invalid(`invalid publish ${JSON.stringify(p)}: ports must be from 1 to 65535`);
  }
  if (p.proto !== 'tcp' && p.proto !== 'udp') throw invalid(`invalid publish ${JSON.stringify(p)}: the protocol must be tcp or udp`);
  return { hostPort: p.hostPort, port: p.port, proto: p.proto };
}

// ---------------------------------------------------------------- plan

/** The host-side veth: `pn<xid>` (or `p<N>n<xid>` for name set N), unique per context and root. */
export function hostIfOf(xid: number, prefix = HOST_IF_PREFIX): string {
  if (!PORT_PREFIX_RE.test(prefix)) throw invalid(`invalid veth prefix '${prefix}'`);
  return validateIfName(`${prefix}${parseXid(xid)}`);
}

/**
 * 02:50:00:00:XX:XX with the xid in the last two bytes: locally administered
 * (bit 1 of the first byte), unicast (bit 0 clear), unique per xid.
 */
export function macOf(xid: number): string {
  const x = parseXid(xid);
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return `02:50:00:00:${hex(x >>> 8)}:${hex(x & 255)}`;
}

/**
 * The gateway link's own MAC, fixed, so the link is the same device on every
 * start (no guest sees it: each guest's gateway is its port). 02:50:ff:…
 * never collides with a context's 02:50:00:00:…
 */
export function bridgeMacOf(bridge: string): string {
  let h = 0x811c9dc5; // FNV-1a: stable across runs and machines
  for (const c of validateIfName(bridge, 'bridge name')) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const hex = (n: number): string => (n & 255).toString(16).padStart(2, '0');
  return `02:50:ff:${hex(h >>> 16)}:${hex(h >>> 8)}:${hex(h)}`;
}

export function planPrivateNet(
  cfg: BridgeConfig,
  ctx: { name: string; xid: number; address4: string; publish: Publish[]; egress?: 'nat' | 'none' },
): PrivateNetPlan {
  const s = validateBridgeConfig(cfg);
  validateName(ctx.name);
  const a = parseIPv4(ctx.address4);
  if (a < s.network || a > s.broadcast)
    throw invalid(`address ${ctx.address4} of context '${ctx.name}' is not in the bridge's subnet ${cfg.subnet4}`);
  if (a === s.network || a === s.broadcast) throw invalid(`address ${ctx.address4} is the network or broadcast address of ${cfg.subnet4}`);
  if (a === s.gateway) throw invalid(`address ${ctx.address4} is the gateway (the bridge's own address)`);
  const publish = ctx.publish.map(validatePublish);
  const seen = new Set<string>();
  for (const p of publish) {
    const k = `${p.hostPort}/${p.proto}`;
    if (seen.has(k)) throw invalid(`host port ${k} is published twice for context '${ctx.name}'`);
    seen.add(k);
  }
  return {
    bridge: cfg.bridge,
    gateway4: formatIPv4(s.gateway),
    prefix: s.prefix,
    address4: formatIPv4(a),
    mac: macOf(ctx.xid),
    hostIf: hostIfOf(ctx.xid, portPrefixOf(cfg)),
    guestIf: 'eth0',
    publish,
    ...(ctx.egress === 'none' ? { egress: 'none' as const } : {}),
  };
}

// ---------------------------------------------------------------- nftables

/** Refuses sets of plans that would make the ruleset ambiguous: two owners of an address, MAC, port or host port. */
function checkPlans(cfg: BridgeConfig, s: Subnet4, plans: PrivateNetPlan[]): void {
  const owner = new Map<string, string>();
  const claim = (key: string, by: string): void => {
    const prev = owner.get(key);
    if (prev !== undefined) throw new PaeneError('exists', `${key} is claimed by both ${prev} and ${by}`);
    owner.set(key, by);
  };
  for (const p of plans) {
    if (p.bridge !== cfg.bridge) throw invalid(`plan for ${p.hostIf} is on bridge ${p.bridge}, not ${cfg.bridge}`);
    validateIfName(p.hostIf);
    if (!portRe(cfg).test(p.hostIf)) throw invalid(`invalid port name '${p.hostIf}': expected ${portPrefixOf(cfg)}N`);
    if (!/^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(p.mac)) throw invalid(`invalid MAC '${p.mac}' for ${p.hostIf}`);
    const a = parseIPv4(p.address4);
    if (a <= s.network || a >= s.broadcast || a === s.gateway)
      throw invalid(`address ${p.address4} of ${p.hostIf} is not a guest address of ${cfg.subnet4}`);
    claim(`port ${p.hostIf}`, p.hostIf);
    claim(`address ${p.address4}`, p.hostIf);
    claim(`MAC ${p.mac}`, p.hostIf);
    for (const pub of p.publish.map(validatePublish)) claim(`host port ${pub.hostPort}/${pub.proto}`, p.hostIf);
  }
}

/**
 * Checks a plan against the bridge it is for: the adapter passes its fields
 * to ip(8) and nft(8), so one made by hand or read back from disk must hold
 * exactly what planPrivateNet would have produced.
 */
export function validatePlan(cfg: BridgeConfig, plan: PrivateNetPlan): PrivateNetPlan {
  const s = validateBridgeConfig(cfg);
  checkPlans(cfg, s, [plan]);
  if (plan.gateway4 !== formatIPv4(s.gateway) || plan.prefix !== s.prefix) {
    throw invalid(
      `plan for ${plan.hostIf} has gateway ${plan.gateway4}/${plan.prefix}, but ${cfg.bridge}'s is ${formatIPv4(s.gateway)}/${s.prefix}`,
    );
  }
  if (plan.guestIf !== 'eth0') throw invalid(`plan for ${plan.hostIf}: the guest interface must be eth0`);
  return plan;
}

/**
 * The lines that make a reload replace paene's tables whole: `table` creates
 * one if absent so `delete` never fails. The bridge family's is the bridged
 * network's (before the routed one): a reload removes it from a host that
 * ran that version.
 */
export function nftRemoveTables(table = NFT_TABLE): string {
  return ['inet', 'netdev', 'bridge'].flatMap((f) => [`table ${f} ${table}`, `delete table ${f} ${table}`]).join('\n') + '\n';
}

/**
 * The whole of paene's nftables state, as one file for `nft -f`. `plans` are
 * the running contexts whose ports exist; `closedPorts` the root's ports
 * that exist without a plan (a context gone, its port not yet): they get
 * nothing through. A netdev chain names its device, which must exist when
 * the file is loaded (src/net/bridge.ts loads it after making the port and
 * before bringing it up).
 *
 * table netdev paene (the port's wall: it runs only for frames entering by
 * that port, where a hook in the inet family would run for every packet of
 * the host; measured: request latency 0.83x the host's against 0.80x)
 *   port_pnN     ingress of pnN, policy drop: frames with the plan's MAC as
 *                source only; IPv4 from the plan's address and not for
 *                127.0.0.0/8 (route_localnet is on for the ports so the host
 *                can reach published ports via localhost; without this a
 *                guest could reach host services bound to it); Ethernet/IPv4
 *                ARP with its own sender MAC and address; nothing else (IPv6,
 *                VLAN tags, other ethertypes)
 *   closed_pnN   ingress of a port without a plan: policy drop, no rule
 *
 * table inet paene
 *   prerouting   DNAT of each published port, for packets to any local address
 *   output       the same for connections made on the host itself (both
 *                only while a port is published)
 *   forward      --egress none contexts' connections out are refused (only
 *                while there is one)
 *   postrouting  masquerade of the subnet leaving by any other interface than
 *                the root's ports; of localhost-sourced connections to guests;
 *                and of hairpin connections (a guest reaching a published
 *                port), so the reply comes back through the host and is un-NATed
 */
export function nftRuleset(cfg: BridgeConfig, plans: PrivateNetPlan[], closedPorts: readonly string[] = []): string {
  const s = validateBridgeConfig(cfg);
  checkPlans(cfg, s, plans);
  const planned = new Set(plans.map((p) => p.hostIf));
  for (const port of closedPorts) {
    if (!portRe(cfg).test(port)) throw invalid(`invalid port name '${port}': expected ${portPrefixOf(cfg)}N`);
    if (planned.has(port)) throw invalid(`port ${port} is both planned and closed`);
  }
  // Each root's prefix (pn, p1n, p12n) matches none of the others' ports.
  const ports = `"${portPrefixOf(cfg)}*"`;
  const subnet = `${formatIPv4(s.network)}/${s.prefix}`;
  const dnat: string[] = [];
  for (const p of plans) {
    for (const pub of p.publish) {
      dnat.push(`\t\tfib daddr type local ${pub.proto} dport ${pub.hostPort} dnat ip to ${p.address4}:${pub.port}`);
    }
  }
  const table = tableOf(cfg);
  const closed = plans.filter((p) => p.egress === 'none').map((p) => p.address4);
  const out: string[] = [nftRemoveTables(table), `table netdev ${table} {`];
  for (const p of plans) {
    out.push(
      `\tchain port_${p.hostIf} {`,
      `\t\ttype filter hook ingress device "${p.hostIf}" priority filter; policy drop;`,
      `\t\tether saddr != ${p.mac} drop`,
      `\t\tether type ip ip saddr ${p.address4} ip daddr != 127.0.0.0/8 accept`,
      // Ethernet/IPv4 ARP only (the fixed offsets of arp saddr assume it), with its own sender MAC and IP.
      `\t\tether type arp arp htype 1 arp ptype 0x0800 arp hlen 6 arp plen 4 arp saddr ether ${p.mac} arp saddr ip ${p.address4} accept`,
      `\t}`,
    );
  }
  for (const port of closedPorts) {
    out.push(`\tchain closed_${port} {`, `\t\ttype filter hook ingress device "${port}" priority filter; policy drop;`, `\t}`);
  }
  out.push(
    `}`,
    `table inet ${table} {`,
    // A base chain costs its hook on every packet (filter) or new connection (nat) of the whole host, Docker's
    // too, even empty: the DNAT chains exist only with a published port, the forward chain only with a closed context.
    ...(dnat.length > 0
      ? [
          `\tchain prerouting {`,
          `\t\ttype nat hook prerouting priority dstnat; policy accept;`,
          ...dnat,
          `\t}`,
          `\tchain output {`,
          `\t\ttype nat hook output priority -100; policy accept;`,
          ...dnat,
          `\t}`,
        ]
      : []),
    // --egress none: what such a guest starts never leaves the private network (TCP gets a reset, ECONNREFUSED)
    ...(closed.length > 0
      ? [
          `\tchain forward {`,
          `\t\ttype filter hook forward priority filter; policy accept;`,
          `\t\tct state established,related accept`,
          `\t\tiifname ${ports} oifname != ${ports} ip saddr { ${closed.join(', ')} } meta l4proto tcp reject with tcp reset`,
          `\t\tiifname ${ports} oifname != ${ports} ip saddr { ${closed.join(', ')} } reject with icmpx type admin-prohibited`,
          `\t}`,
        ]
      : []),
    `\tchain postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    `\t\toifname != ${ports} ip saddr ${subnet} masquerade`,
    `\t\toifname ${ports} ip saddr 127.0.0.0/8 masquerade`,
    `\t\toifname ${ports} ip saddr ${subnet} ct status dnat masquerade`,
    `\t}`,
    `}`,
    '',
  );
  return out.join('\n');
}

// ---------------------------------------------------------------- egress of shared contexts

/** The link a root's egress pool is local on (a dummy where the kernel has one; a bridge without ports is the same to routing). */
export const EGRESS_LINK = 'paene-egress';

/** The nft table of an egress pool: one per pool (pools are claimed host-wide, so one per root). */
export function egressTableOf(pool: string): string {
  const s = parseSubnet4(pool);
  return `paene_eg_${formatIPv4(s.network).replaceAll('.', '_')}_${s.prefix}`;
}

/**
 * The ruleset of a shared egress pool, for `nft -f`: replies come back by
 * conntrack, the pool itself is local (an AnyIP route on paene-egress).
 *
 * table inet paene_eg_A_B_C_D_N
 *   set closed     the addresses of contexts with --egress none
 *   output         from a closed address to anything not local: TCP reset
 *                  (connect gets ECONNREFUSED), anything else an ICMP
 *                  admin-prohibited (EHOSTUNREACH / EACCES); the host's
 *                  published addresses and other contexts stay reachable;
 *                  from the pool into a private network (a port in
 *                  PORT_GROUP) the same, unless DNATed (a published port)
 *   postrouting    masquerade of the pool leaving by any interface but lo
 */
export function egressRuleset(pool: string, closed: readonly string[]): string {
  const s = parseSubnet4(pool);
  const cidr = `${formatIPv4(s.network)}/${s.prefix}`;
  const t = egressTableOf(pool);
  for (const a of closed) {
    const n = parseIPv4(a);
    if (n < s.network || n > s.broadcast) throw invalid(`address ${a} is not in the egress pool ${cidr}`);
  }
  const elements = closed.length > 0 ? ` elements = { ${[...new Set(closed)].join(', ')} };` : '';
  return [
    `table inet ${t}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `\tset closed { type ipv4_addr;${elements} }`,
    `\tchain output {`,
    `\t\ttype filter hook output priority filter; policy accept;`,
    `\t\tip saddr @closed fib daddr type != local meta l4proto tcp reject with tcp reset`,
    `\t\tip saddr @closed fib daddr type != local reject with icmpx type admin-prohibited`,
    // into a private network (any root's port): only through a published port (DNAT)
    `\t\tip saddr ${cidr} oifgroup ${PORT_GROUP} ct status & dnat == 0 meta l4proto tcp reject with tcp reset`,
    `\t\tip saddr ${cidr} oifgroup ${PORT_GROUP} ct status & dnat == 0 reject with icmpx type admin-prohibited`,
    `\t}`,
    `\tchain postrouting {`,
    `\t\ttype nat hook postrouting priority srcnat; policy accept;`,
    `\t\tip saddr ${cidr} ip daddr != ${cidr} oifname != "lo" masquerade`,
    `\t}`,
    `}`,
    '',
  ].join('\n');
}
