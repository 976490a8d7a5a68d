// Carries out a PrivateNetPlan (src/net/bridgeplan.ts) with ip(8) and nft(8):
// the gateway's link (a bridge device without ports) with the subnet's
// address, one veth pair per context (host end a routed port, guest end eth0
// in the context's namespace), and paene's nftables tables (NAT, --publish,
// anti-spoofing).
//
// Every host-side command runs in `hostNetns` when it is given, through
// `nsenter --net=PATH` (any path works, not only /run/netns names as with
// `ip -n`). Guest-side commands run the same way in the guest's namespace.
// The binaries are the host's: nsenter enters only the network namespace.
//
// Order for a new context (so a port never carries a frame unfiltered):
//   ensureBridge → connectPrivate (the port made down, the ruleset loaded
//   with its chain, the port up)
// Order for a leaving one: disconnectPrivate → loadRuleset(the others) →
// removeBridgeIfUnused. The caller keeps two of these from running at once
// for one root (its ruleset is replaced whole).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  type BridgeConfig,
  bridgeMacOf,
  EGRESS_LINK,
  egressRuleset,
  egressTableOf,
  formatIPv4,
  HOST_IF_RE,
  parseSubnet4,
  nftRemoveTables,
  nftRuleset,
  PORT_GROUP,
  portRe,
  type PrivateNetPlan,
  tableOf,
  validateBridgeConfig,
  validateIfName,
  validatePlan,
} from './bridgeplan.js';
import { type ErrorCode, PaeneError } from '../model/errors.js';
import type { HostNet } from '../model/subnets.js';

export interface NetHost {
  /** path to a network namespace file (/run/netns/NAME, /proc/PID/ns/net); undefined = this process's own */
  hostNetns?: string;
}

// ---------------------------------------------------------------- running commands

const PACKAGE_OF: Record<string, string> = { ip: 'iproute2', nft: 'nftables', nsenter: 'util-linux', sysctl: 'procps' };
const found = new Map<string, string>();

/** Absolute path of a tool; sbin directories too, since a non-login root shell may lack them in PATH. */
function tool(name: string): string {
  const cached = found.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter((d) => d !== '');
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      found.set(name, p);
      return p;
    } catch {
      // not here
    }
  }
  throw new PaeneError(
    'unsupported',
    `private networking needs \`${name}\`, which is not installed (Debian package ${PACKAGE_OF[name] ?? name}; scripts/setup.sh installs it)`,
  );
}

interface Result {
  status: number;
  stdout: string;
  stderr: string;
  /** the command as a person would type it, for messages */
  text: string;
}

function exec(netns: string | undefined, name: string, args: string[], input?: string): Result {
  const bin = tool(name);
  let argv = [bin, ...args];
  if (netns !== undefined) {
    // A missing namespace file would otherwise surface as a puzzling nsenter error.
    if (!fs.existsSync(netns)) throw new PaeneError('not-found', `network namespace ${netns} does not exist`);
    argv = [tool('nsenter'), `--net=${netns}`, '--', ...argv];
  }
  const r = spawnSync(argv[0] as string, argv.slice(1), {
    encoding: 'utf8',
    input,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
  });
  const text = `${netns !== undefined ? `(in ${netns}) ` : ''}${name} ${args.join(' ')}`;
  if (r.error) throw new PaeneError('internal', `${text}: ${r.error.message}`);
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr, text };
}

// Kernel messages that mean "this kernel cannot do it", not "you did it wrong".
const UNSUPPORTED_RE = /Unknown device type|Operation not supported|Protocol not supported|Address family not supported|not supported/i;

function failure(r: Result, what?: string): PaeneError {
  const err = (r.stderr || r.stdout).trim();
  let code: ErrorCode = 'internal';
  let hint = '';
  if (UNSUPPORTED_RE.test(err)) {
    code = 'unsupported';
    hint = ` (the kernel lacks ${what ?? 'a feature private networking needs: veth, bridge devices, or nf_tables with netdev, nat, fib and masquerade'})`;
  } else if (/File exists/.test(err)) {
    code = 'exists';
  }
  return new PaeneError(code, `${r.text} failed: ${err}${hint}`);
}

function must(netns: string | undefined, name: string, args: string[], input?: string, what?: string): string {
  const r = exec(netns, name, args, input);
  if (r.status !== 0) throw failure(r, what);
  return r.stdout;
}

/** Several ip commands in one process (ip -batch stops at the first failure); the error names the failing one. */
function batch(netns: string | undefined, lines: string[]): void {
  const r = exec(netns, 'ip', ['-batch', '-'], lines.join('\n') + '\n');
  if (r.status === 0) return;
  const n = /Command failed -:(\d+)/.exec(r.stderr);
  const line = n ? lines[Number(n[1]) - 1] : undefined;
  const stderr = r.stderr.replace(/\n?Command failed -:\d+\s*$/, '');
  throw failure({ ...r, stderr, text: line !== undefined ? r.text.replace(/-batch -$/, line) : r.text });
}

// ---------------------------------------------------------------- reading state

interface Link {
  ifname: string;
  master?: string;
  kind?: string;
}

/** All links of a namespace (ip -d -j: linkinfo.info_kind says bridge / veth). */
function links(netns: string | undefined): Link[] {
  const raw = JSON.parse(must(netns, 'ip', ['-d', '-j', 'link', 'show']) || '[]') as {
    ifname: string;
    master?: string;
    linkinfo?: { info_kind?: string };
  }[];
  return raw.map((l) => ({ ifname: l.ifname, master: l.master, kind: l.linkinfo?.info_kind }));
}

function link(netns: string | undefined, name: string): Link | undefined {
  return links(netns).find((l) => l.ifname === name);
}

function nftTables(netns: string | undefined, table: string): string[] {
  return must(netns, 'nft', ['list', 'tables'])
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => ['inet', 'netdev', 'bridge'].some((f) => l === `table ${f} ${table}`));
}

/** The names of every link in the namespace (a free-looking name set is skipped when a link already has its bridge's name). */
export function linkNames(h: NetHost): string[] {
  return links(h.hostNetns).map((l) => l.ifname);
}

/** Every nft table name in the namespace, any family. */
export function nftTableNames(h: NetHost): string[] {
  const r = exec(h.hostNetns, 'nft', ['list', 'tables']);
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[2])
    .filter((t): t is string => t !== undefined && t !== '');
}

/**
 * The IPv4 networks the namespace already uses, for the subnet choice
 * (model/subnets.ts): every route's destination in every table but `local`
 * (the default route left out: it overlaps everything and is what NAT goes
 * out by), and every interface address's network. A root's ports (pnN,
 * p<N>nN) are left out: their /32 routes and gateway addresses lie in their
 * root's subnet, which its gateway's link and the registry already show, and
 * a root's own ports must not count against its own subnet.
 */
export function hostNets(h: NetHost): HostNet[] {
  const out: HostNet[] = [];
  const routes = JSON.parse(must(h.hostNetns, 'ip', ['-j', '-4', 'route', 'show', 'table', 'all']) || '[]') as {
    dst?: string;
    dev?: string;
    table?: string;
    type?: string;
  }[];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || r.table === 'local' || (r.type !== undefined && r.type !== 'unicast')) continue;
    if (r.dev !== undefined && HOST_IF_RE.test(r.dev)) continue;
    const cidr = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    out.push({ cidr, what: `route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}`, ...(r.dev ? { dev: r.dev } : {}) });
  }
  const addrs = JSON.parse(must(h.hostNetns, 'ip', ['-j', '-4', 'addr', 'show']) || '[]') as {
    ifname: string;
    addr_info?: { family?: string; local?: string; prefixlen?: number }[];
  }[];
  for (const l of addrs) {
    if (HOST_IF_RE.test(l.ifname)) continue;
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet' || !a.local || a.prefixlen === undefined || a.local.startsWith('127.')) continue;
      out.push({ cidr: `${a.local}/${a.prefixlen}`, what: `address ${a.local}/${a.prefixlen} on ${l.ifname}`, dev: l.ifname });
    }
  }
  return out;
}

// ---------------------------------------------------------------- the API

/**
 * The gateway's link, up, with the gateway address and so the subnet's route
 * (an address the host's other tools and paene's other roots see: the subnet
 * is taken); IPv4 forwarding on in that namespace. A bridge device: it needs
 * no module the kernel may lack (a dummy does), and no port is ever
 * enslaved to it. Idempotent.
 */
export function ensureBridge(h: NetHost, cfg: BridgeConfig): void {
  const s = validateBridgeConfig(cfg);
  tool('nft'); // fail before changing anything if it is missing
  const ns = h.hostNetns;
  const br = link(ns, cfg.bridge);
  if (br === undefined) {
    must(
      ns,
      'ip',
      ['link', 'add', 'name', cfg.bridge, 'address', bridgeMacOf(cfg.bridge), 'type', 'bridge'],
      undefined,
      'bridge support (CONFIG_BRIDGE)',
    );
  } else if (br.kind !== 'bridge') {
    throw new PaeneError(
      'exists',
      `${cfg.bridge} exists and is not a bridge (it is a ${br.kind ?? 'plain device'}); choose another bridge name`,
    );
  }
  must(ns, 'ip', ['addr', 'replace', `${formatIPv4(s.gateway)}/${s.prefix}`, 'dev', cfg.bridge]);
  must(ns, 'ip', ['link', 'set', 'dev', cfg.bridge, 'up']);
  // Slash form: a '.' in the bridge name would split a dotted sysctl key.
  must(ns, 'sysctl', ['-q', '-w', 'net/ipv4/ip_forward=1']);
}

/**
 * Creates the veth pair with its guest end directly in the guest namespace as
 * eth0 (one netlink request: both ends or neither), makes the host end a
 * routed port, and configures the guest: lo up, address, eth0 up, default
 * route via the gateway. On any failure the pair is deleted again.
 *
 * The port is made down, then the ruleset is loaded with its chain (`others`:
 * the root's other running contexts), then it comes up: it never carries a
 * frame unfiltered. Up, it has: PORT_GROUP (the egress pool's wall knows it
 * by that); the gateway's address as a /32 (the guest's ARP for the gateway
 * is answered there, and a masqueraded hairpin leaves from it); the
 * context's address as a /32 route; proxy ARP at once, so a guest's ARP for
 * another guest of the subnet is answered with the port's MAC and the host
 * routes between them; route_localnet, so DNAT of connections to
 * 127.0.0.1:HOSTPORT can leave through it (the port's chain drops anything
 * for 127/8 in return); IPv6 off (the guest's network is IPv4).
 */
export function connectPrivate(
  h: NetHost,
  cfg: BridgeConfig,
  plan: PrivateNetPlan,
  guestNetns: string,
  others: readonly PrivateNetPlan[],
): void {
  validatePlan(cfg, plan); // its fields become ip arguments and ip -batch lines
  // Absolute: ip would read a bare word as a name under /run/netns.
  if (!path.isAbsolute(guestNetns))
    throw new PaeneError('invalid-argument', `guest network namespace must be given as an absolute path, not '${guestNetns}'`);
  if (!fs.existsSync(guestNetns)) throw new PaeneError('not-found', `network namespace ${guestNetns} does not exist`);
  const ns = h.hostNetns;
  if (link(ns, cfg.bridge)?.kind !== 'bridge')
    throw new PaeneError('wrong-state', `the gateway's link ${cfg.bridge} does not exist: ensureBridge first`);
  // ip opens a `netns` argument containing '/' as a path (/proc/PID/ns/net works).
  must(
    ns,
    'ip',
    [
      'link',
      'add',
      'name',
      plan.hostIf,
      'group',
      String(PORT_GROUP),
      'type',
      'veth',
      'peer',
      'name',
      plan.guestIf,
      'address',
      plan.mac,
      'netns',
      guestNetns,
    ],
    undefined,
    'veth support (CONFIG_VETH)',
  );
  try {
    // Without these the host end gets an IPv6 link-local address, and a shared context's wall refuses the host's
    // addresses one by one (16 at most), so 16 private contexts made every shared start fail. Before `up`, when
    // the kernel makes it; a kernel without IPv6 refuses both and has nothing to turn off.
    exec(ns, 'ip', ['link', 'set', 'dev', plan.hostIf, 'addrgenmode', 'none']);
    exec(ns, 'sysctl', ['-q', '-w', `net/ipv6/conf/${plan.hostIf}/disable_ipv6=1`]);
    must(ns, 'sysctl', [
      '-q',
      '-w',
      `net/ipv4/conf/${plan.hostIf}/proxy_arp=1`,
      `net/ipv4/neigh/${plan.hostIf}/proxy_delay=0`,
      `net/ipv4/conf/${plan.hostIf}/route_localnet=1`,
    ]);
    loadRuleset(h, cfg, [...others, plan]);
    batch(ns, [
      `link set dev ${plan.hostIf} up`,
      `addr add ${plan.gateway4}/32 dev ${plan.hostIf}`,
      `route add ${plan.address4}/32 dev ${plan.hostIf} src ${plan.gateway4}`,
    ]);
    const guest = [
      'link set dev lo up',
      `addr add ${plan.address4}/${plan.prefix} broadcast + dev ${plan.guestIf}`,
      `link set dev ${plan.guestIf} up`,
      `route add default via ${plan.gateway4} dev ${plan.guestIf}`,
    ];
    batch(guestNetns, guest);
  } catch (e) {
    // Deleting the host end takes the guest end with it, and the port's address, route and chain.
    exec(ns, 'ip', ['link', 'del', 'dev', plan.hostIf]);
    throw e;
  }
}

/** Removes the host end of the pair (the guest's eth0 goes with it). Absent is fine. */
export function disconnectPrivate(h: NetHost, plan: PrivateNetPlan): void {
  validateIfName(plan.hostIf);
  const l = link(h.hostNetns, plan.hostIf);
  if (l === undefined) return;
  if (l.kind !== 'veth') throw new PaeneError('internal', `${plan.hostIf} is a ${l.kind ?? 'plain device'}, not paene's veth: left alone`);
  const r = exec(h.hostNetns, 'ip', ['link', 'del', 'dev', plan.hostIf]);
  // Gone in between (its namespace died): that is the wanted state.
  if (r.status !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) throw failure(r);
}

/**
 * Replaces paene's tables in one transaction, for the plans whose ports
 * exist (a netdev chain needs its device; a context whose port is gone has
 * nothing to filter). A port of the root without a plan gets a chain that
 * drops everything. With neither, removes the tables.
 */
export function loadRuleset(h: NetHost, cfg: BridgeConfig, plans: readonly PrivateNetPlan[]): void {
  validateBridgeConfig(cfg);
  const present = new Set(
    links(h.hostNetns)
      .filter((l) => isPortOf(cfg, l))
      .map((l) => l.ifname),
  );
  const kept = plans.filter((p) => present.has(p.hostIf));
  const planned = new Set(kept.map((p) => p.hostIf));
  const closed = [...present].filter((port) => !planned.has(port)).sort();
  const text = kept.length > 0 || closed.length > 0 ? nftRuleset(cfg, kept, closed) : nftRemoveTables(tableOf(cfg));
  must(h.hostNetns, 'nft', ['-f', '-'], text, 'nf_tables (CONFIG_NF_TABLES with inet, netdev, nat, fib, masquerade)');
}

/** A root's ports: veths named with its prefix (pnN, p<N>nN). */
function isPortOf(cfg: BridgeConfig, l: Link): boolean {
  return l.kind === 'veth' && portRe(cfg).test(l.ifname);
}

/** Deletes the gateway's link and paene's tables once no port of the root is left; with ports, leaves everything. */
export function removeBridgeIfUnused(h: NetHost, cfg: BridgeConfig): void {
  validateBridgeConfig(cfg);
  const ns = h.hostNetns;
  const all = links(ns);
  if (all.some((l) => isPortOf(cfg, l))) return;
  const br = all.find((l) => l.ifname === cfg.bridge);
  if (br !== undefined) {
    if (br.kind !== 'bridge') return; // not ours: ensureBridge refuses to use it either
    must(ns, 'ip', ['link', 'del', 'dev', cfg.bridge]);
  }
  if (nftTables(ns, tableOf(cfg)).length > 0) must(ns, 'nft', ['-f', '-'], nftRemoveTables(tableOf(cfg)));
}

/** What of this root's is still in the host namespace: its gateway's link, its ports (veths named with its prefix), its nft tables. */
export function leftovers(h: NetHost, cfg: BridgeConfig): string[] {
  validateBridgeConfig(cfg);
  const out: string[] = [];
  for (const l of links(h.hostNetns)) {
    if (l.ifname === cfg.bridge) out.push(`bridge ${l.ifname}`);
    else if (isPortOf(cfg, l) || l.master === cfg.bridge) out.push(`port ${l.ifname}`);
  }
  for (const t of nftTables(h.hostNetns, tableOf(cfg))) out.push(`nft ${t}`);
  return out;
}

// ---------------------------------------------------------------- egress of shared contexts

/**
 * A shared egress pool, up: the paene-egress link (made if absent), the
 * pool's first address on it (the host's face towards the contexts), the
 * whole pool local (an AnyIP route: a context binds its address with no
 * address per context), and the pool's table (masquerade out, the closed
 * contexts refused). Idempotent: every start and live change reloads it.
 */
export function ensureEgress(h: NetHost, pool: string, closed: readonly string[]): void {
  const text = egressRuleset(pool, closed); // validates the pool
  const s = parseSubnet4(pool);
  const ns = h.hostNetns;
  const l = link(ns, EGRESS_LINK);
  if (l === undefined) {
    // a dummy is the natural kind; a kernel without it (this one) gets a bridge without ports, the same to routing
    if (exec(ns, 'ip', ['link', 'add', EGRESS_LINK, 'type', 'dummy']).status !== 0)
      must(ns, 'ip', ['link', 'add', EGRESS_LINK, 'type', 'bridge'], undefined, 'dummy or bridge devices');
  } else if (l.kind !== 'dummy' && l.kind !== 'bridge') {
    throw new PaeneError('exists', `${EGRESS_LINK} exists and is a ${l.kind ?? 'plain device'}, not paene's`);
  }
  must(ns, 'ip', ['link', 'set', 'dev', EGRESS_LINK, 'up']);
  must(ns, 'ip', ['addr', 'replace', `${formatIPv4(s.gateway)}/${s.prefix}`, 'dev', EGRESS_LINK]);
  must(ns, 'ip', ['route', 'replace', 'local', `${formatIPv4(s.network)}/${s.prefix}`, 'dev', EGRESS_LINK, 'table', 'local']);
  must(ns, 'nft', ['-f', '-'], text, 'nf_tables (CONFIG_NF_TABLES with inet, nat, fib, masquerade, reject)');
}

/** Takes a pool's egress down: its table, route and address; the link once no address is left on it. Absent is fine. */
export function removeEgress(h: NetHost, pool: string): void {
  const s = parseSubnet4(pool);
  const ns = h.hostNetns;
  const t = egressTableOf(pool);
  must(ns, 'nft', ['-f', '-'], `table inet ${t}\ndelete table inet ${t}\n`);
  if (link(ns, EGRESS_LINK) === undefined) return;
  exec(ns, 'ip', ['route', 'del', 'local', `${formatIPv4(s.network)}/${s.prefix}`, 'dev', EGRESS_LINK, 'table', 'local']);
  exec(ns, 'ip', ['addr', 'del', `${formatIPv4(s.gateway)}/${s.prefix}`, 'dev', EGRESS_LINK]);
  const left = JSON.parse(must(ns, 'ip', ['-j', 'addr', 'show', 'dev', EGRESS_LINK]) || '[]') as { addr_info?: { family?: string }[] }[];
  if (!left.some((x) => (x.addr_info ?? []).some((a) => a.family === 'inet'))) exec(ns, 'ip', ['link', 'del', 'dev', EGRESS_LINK]);
}

/** What of a pool's egress is still there (leak checks): its table, the link. */
export function egressLeftovers(h: NetHost, pool: string): string[] {
  const out: string[] = [];
  const t = egressTableOf(pool);
  if (nftTableNames(h).includes(t)) out.push(`nft table inet ${t}`);
  if (link(h.hostNetns, EGRESS_LINK) !== undefined) out.push(`link ${EGRESS_LINK}`);
  return out;
}

/**
 * Why this namespace cannot give shared contexts a way out, or undefined when
 * it can: `ip`, and an nft that loads the egress table (inet, nat,
 * masquerade, fib, reject), asked with `nft --check` (the kernel checks the
 * batch and commits nothing).
 */
export function egressUnsupported(h: NetHost, pool: string): string | undefined {
  try {
    tool('ip');
    const r = exec(h.hostNetns, 'nft', ['--check', '-f', '-'], egressRuleset(pool, []));
    if (r.status !== 0) return `nft cannot load the egress table here (${(r.stderr || r.stdout).trim().split('\n')[0]})`;
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Whether this process's namespace has the paene-egress link (from /proc/self/net/dev: no process run, unlike `ip`). */
export function egressLinkPresent(): boolean {
  try {
    return fs
      .readFileSync('/proc/self/net/dev', 'utf8')
      .split('\n')
      .some((l) => l.trimStart().startsWith(`${EGRESS_LINK}:`));
  } catch {
    return false;
  }
}
