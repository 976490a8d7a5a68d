// A context's network through its life: the address it gets at create, the
// walls put up before its init runs, the plumbing after, and what is taken
// down when it stops. One module per model does the kernel work:
//   shared   cgroup BPF sock_addr programs (core/sockaddr + kernel/bpf),
//            a Landlock scope for abstract unix sockets, no sock_diag (seccomp)
//   private  a network namespace, a routed veth, NAT (net/bridge)
//   none     a network namespace with loopback only
//   host     nothing (privileged profile only)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type BridgeConfig,
  EGRESS_LINK,
  type PrivateNetPlan,
  egressRuleset,
  egressTableOf,
  cidrContains,
  formatIPv4,
  planPrivateNet,
  portPrefixOf,
  tableOf,
} from '../net/bridgeplan.js';
import { PaeneError } from '../model/errors.js';
import { type HostNet, chooseNetNames, chooseSubnet, subnetCandidates, subnetRefusal } from '../model/subnets.js';
import {
  type NetSettings,
  type NetSpec,
  addressPool,
  defaultNetSettings,
  egressOf,
  egressPoolCandidates,
  familyOf,
  inEgressPool,
  reservedAddressOf,
  validateNetSettings,
} from '../net/model.js';
import { type ClaimKind, HostRegistry, type Owner, ownerText } from '../net/registry.js';
import { type SockAddrPolicy, buildSockAddr, hostRefusals } from '../net/sockaddr.js';
import type { ContextConfig } from '../context/config.js';
import { applySockAddr, sockAddrArgs } from '../kernel/bpf.js';
import type { ContextCgroup } from '../cgroups/cgroups.js';
import { type ExecRequest, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, type StartRequest, landlockAbi } from '../kernel/helper.js';
import { writeFileAtomic, writeJsonAtomic } from '../kernel/atomic.js';
import { acquireFileLockSync } from '../kernel/filelock.js';
import type { BindMount } from '../model/mounts.js';
import { formatResolvConf, guestResolv, readHostResolvConfs } from '../net/resolv.js';
import { DEFAULT_ROOT, type Layout } from '../kernel/layout.js';
import type { StateStore } from './state.js';

/** Who holds which address (the runtime's address claims): read without reading every config. */
export interface AddressBook {
  holder(address: string): string | undefined;
  /** claims the lowest free address of a range (numbers) for a context; undefined when none is free */
  claimLowest(name: string, first: number, last: number, keyOf: (n: number) => string, skip: ReadonlySet<number>): string | undefined;
  /** the owner, in words, of an address claimed in another state root (the host-wide registry); undefined when none */
  elsewhere?(address: string): string | undefined;
}
import {
  type NetHost,
  connectPrivate,
  disconnectPrivate,
  egressLeftovers,
  egressLinkPresent,
  egressUnsupported,
  ensureBridge,
  ensureEgress,
  hostNets,
  leftovers,
  linkNames,
  loadRuleset,
  nftTableNames,
  removeBridgeIfUnused,
  removeEgress,
} from '../net/bridge.js';

/** A warning about the host, said once per process and subject (a create of 1,000 contexts says it once). */
const warned = new Set<string>();
function warnOnce(subject: 'egress' | 'dns', text: string): void {
  if (warned.has(subject)) return;
  warned.add(subject);
  process.stderr.write(`paene: warning: ${text}\n`);
}

/** The registry scope's directory of egress pools that are up (a file per pool's table, holding its closed set). */
const EGRESS_UP = 'egress-up';

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

const dnsWarning = (why: string) =>
  `no resolver for the context's /etc/resolv.conf (its image's stays): ${why}; give one with paene net settings --dns IP or create --dns IP`;

/** Landlock ABI 6 (Linux 6.12) brought the abstract unix socket scope. */
const LANDLOCK_ABI_SCOPES = 6;

export class ContextNetwork {
  /** whether this process holds the root's ruleset lock (rulesetLocked) */
  private rulesetHeld = false;

  constructor(
    private readonly layout: Layout,
    private readonly store: StateStore,
  ) {}

  get settingsFile(): string {
    return path.join(this.layout.root, 'net.json');
  }

  /** The root's settings ($ROOT/net.json over the defaults). */
  settings(): NetSettings {
    const defaults = defaultNetSettings(this.layout.root === DEFAULT_ROOT ? undefined : this.layout.cgroupParent.slice('paene-'.length));
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(this.settingsFile, 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return defaults;
      throw new PaeneError('invalid-argument', `${this.settingsFile}: ${(e as Error).message}`);
    }
    return validateNetSettings(raw, defaults, this.settingsFile);
  }

  saveSettings(change: Partial<NetSettings>): NetSettings {
    const cur = this.settings();
    // A bridge or subnet given by the administrator is theirs: checked against other roots and the host now, refused on a clash.
    let next = validateNetSettings(
      { ...cur, ...change, ...(change.bridge !== undefined ? { bridgeGiven: true } : {}) },
      cur,
      'network settings',
    );
    this.refuseEgressPoolChange(cur, next);
    if (change.egressPool4 !== undefined) this.claimEgressPool(change.egressPool4);
    if (change.bridge !== undefined) {
      // its own nft table and veth prefix are chosen with it, unless given too
      const bridge = {
        bridge: change.bridge.bridge,
        subnet4: change.bridge.subnet4,
        table: change.bridge.table,
        portPrefix: change.bridge.portPrefix,
      };
      next = { ...next, bridge: this.lease({ ...next, bridge }, true) };
    }
    fs.mkdirSync(this.layout.root, { recursive: true });
    writeJsonAtomic(this.settingsFile, next);
    return next;
  }

  // ------------------------------------------------------------ the host-wide registry

  /** The registry of the namespace a root's bridge (or a shared context's address) lives in. */
  registry(netns: string | undefined): HostRegistry {
    return HostRegistry.forNetns(netns, stillHeld);
  }

  /**
   * Where an address is claimed host-wide: a shared context's address (or
   * any other outside this root's private subnet) in the registry of this
   * process's namespace; a private context's address needs none, its
   * subnet is the root's alone (see privateSettings).
   */
  addressRegistry(addr: string): HostRegistry | undefined {
    const s = this.settings();
    if (familyOf(addr) === 4 && s.bridge.table !== undefined && cidrContains(s.bridge.subnet4, addr)) return undefined;
    return this.registry(undefined);
  }

  /**
   * This root's private network, claimed host-wide: its bridge, nft table
   * and veth prefix (a name set of model/subnets.ts) and its subnet. The
   * first private context of a root leases them: the names and subnet of
   * net.json (paene0, 10.88.0.0/16 by default) when no other root holds
   * them and no route or address of the host overlaps the subnet; otherwise
   * the lowest free name set and the first free subnet, written to net.json.
   * Settings the administrator gave are refused on a clash instead.
   */
  privateSettings(): NetSettings {
    const s = this.settings();
    const b = this.lease(s, s.bridgeGiven === true);
    if (b === s.bridge) return s;
    const next = validateNetSettings({ ...s, bridge: b }, s, 'network settings');
    fs.mkdirSync(this.layout.root, { recursive: true });
    writeJsonAtomic(this.settingsFile, next);
    return next;
  }

  /** The bridge config `s` leases (itself when it is held already or free), claimed in the registry. */
  private lease(s: NetSettings, given: boolean): BridgeConfig {
    const me: Owner = { root: this.layout.root };
    const reg = this.registry(s.hostNetns);
    const h = this.host(s);
    return reg.locked(() => {
      const others = (k: ClaimKind) => new Map([...reg.live(k)].filter(([, o]) => o.root !== me.root));
      let want: BridgeConfig = { ...s.bridge, table: tableOf(s.bridge), portPrefix: portPrefixOf(s.bridge) };
      if (given && s.bridge.table === undefined) {
        // a bridge given without a table and prefix: the lowest free pair
        const taken = new Set([...others('table').keys()].map((t) => `table ${t}`));
        for (const [p] of others('prefix')) taken.add(`prefix ${p}`);
        for (const t of nftTableNames(h)) taken.add(`table ${t}`);
        const set = chooseNetNames(taken);
        if (!set) throw new PaeneError('exists', 'no free paene nft table name left on this host');
        want = { ...want, table: set.names.table, portPrefix: set.names.portPrefix };
      }
      const keys = (b: BridgeConfig): [ClaimKind, string][] => [
        ['bridge', b.bridge],
        ['table', tableOf(b)],
        ['prefix', portPrefixOf(b)],
        ['subnet', b.subnet4],
      ];
      const mine = (b: BridgeConfig) => keys(b).every(([k, key]) => reg.ownerOf(k, key)?.root === me.root && !reg.ownerOf(k, key)?.name);
      const claimAll = (b: BridgeConfig): BridgeConfig => {
        for (const [k, key] of keys(b)) {
          const o = reg.claim(k, key, me);
          if (o) throw new PaeneError('exists', `${k} ${key} is used by ${ownerText(o)}`);
        }
        return b;
      };
      // Held already (the usual start): no look at the host's routes.
      if (s.bridge.table !== undefined && mine(want)) return s.bridge;
      const subnets = new Map([...others('subnet')].map(([c, o]) => [c, ownerText(o)]));
      const nets: HostNet[] = hostNets(h);
      const names = [...keys(want)].slice(0, 3);
      const why =
        names
          .map(([k, key]) => (others(k).has(key) ? `${k} ${key} is used by ${ownerText(others(k).get(key) as Owner)}` : undefined))
          .find(Boolean) ?? subnetRefusal(want.subnet4, subnets, nets, new Set([want.bridge]));
      if (why === undefined) return claimAll(want);
      if (given) throw new PaeneError('exists', `${why}: choose another (paene net settings --subnet CIDR)`);
      if (this.hasPrivateContexts())
        throw new PaeneError(
          'exists',
          `${why}; this root's private contexts already have addresses in ${want.subnet4}: move them or change --subnet`,
        );
      const taken = new Set<string>();
      for (const [key] of others('bridge')) taken.add(key);
      for (const [key] of others('table')) taken.add(`table ${key}`);
      for (const [key] of others('prefix')) taken.add(`prefix ${key}`);
      for (const l of linkNames(h)) taken.add(l); // a bridge of that name made by something else
      for (const t of nftTableNames(h)) taken.add(`table ${t}`);
      const set = chooseNetNames(taken);
      if (!set) throw new PaeneError('exists', 'no free paene bridge name left on this host');
      const sub = chooseSubnet(subnetCandidates(), subnets, nets, new Set([set.names.bridge]));
      if (!sub) throw new PaeneError('exists', `no free private subnet: every candidate overlaps another root or the host`);
      return claimAll({ bridge: set.names.bridge, subnet4: sub.cidr, table: set.names.table, portPrefix: set.names.portPrefix });
    });
  }

  /**
   * An egress pool given with net settings, or used again after the root
   * gave its claims back: refused when it overlaps another root's subnet or
   * a network of this host; else claimed (once: held already is quick).
   */
  private claimEgressPool(pool: string): void {
    const me: Owner = { root: this.layout.root };
    const reg = this.registry(undefined);
    reg.locked(() => {
      const cur = reg.ownerOf('subnet', pool);
      if (cur?.root === me.root && cur.name === undefined) return;
      const subnets = new Map([...reg.live('subnet')].filter(([, o]) => o.root !== me.root).map(([c, o]) => [c, ownerText(o)]));
      const why = subnetRefusal(pool, subnets, hostNets({}), new Set([EGRESS_LINK]));
      if (why !== undefined) throw new PaeneError('exists', `egress pool: ${why}: choose another (paene net settings --egress-pool CIDR)`);
      const o = reg.claim('subnet', pool, me);
      if (o) throw new PaeneError('exists', `egress pool ${pool} is used by ${ownerText(o)}`);
    });
  }

  /**
   * The root's settings with its egress pool picked, when it picks one itself
   * (egressAuto, the default of a root without a net.json) and has none it
   * still holds: the first of egressPoolCandidates that no other root claims
   * and no route or address of this namespace overlaps, claimed under the
   * registry's lock and recorded in net.json. A host that cannot NAT (no
   * `ip`, an nft without inet, nat, fib or reject) keeps the 127.x pool, with
   * one warning line, never a failure.
   */
  egressSettings(): NetSettings {
    const s = this.settings();
    if (s.egressAuto !== true) return s;
    const me: Owner = { root: this.layout.root };
    const reg = this.registry(undefined);
    if (s.egressPool4 !== undefined) {
      const o = reg.locked(() => reg.ownerOf('subnet', s.egressPool4 as string));
      if (o?.root === me.root && o.name === undefined) return s; // its own still: the usual create
      try {
        this.claimEgressPool(s.egressPool4); // given back with the root's last context: taken again
        return s;
      } catch (e) {
        // taken by another root meanwhile, or a route of the host overlaps it now: picked again, unless a context holds it
        if (this.egressHolder(s) !== undefined) throw e;
      }
    }
    const candidates = egressPoolCandidates();
    const why = egressUnsupported({}, candidates[0] as string);
    if (why !== undefined) {
      warnOnce(
        'egress',
        `shared contexts get 127.x addresses, cut off from the world: ${why} (paene net settings --egress-pool none silences this)`,
      );
      return s;
    }
    const pool = reg.locked(() => {
      const subnets = new Map([...reg.live('subnet')].filter(([, o]) => o.root !== me.root).map(([c, o]) => [c, ownerText(o)]));
      const sub = chooseSubnet(candidates, subnets, hostNets({}), new Set([EGRESS_LINK]));
      if (sub === undefined || reg.claim('subnet', sub.cidr, me) !== undefined) return undefined;
      return sub.cidr;
    });
    if (pool === undefined) {
      warnOnce(
        'egress',
        `shared contexts get 127.x addresses: every egress pool candidate (${candidates[0]} on) overlaps the host or another root (paene net settings --egress-pool CIDR)`,
      );
      return s;
    }
    const next = validateNetSettings({ ...s, egressPool4: pool }, s, 'network settings');
    fs.mkdirSync(this.layout.root, { recursive: true });
    writeJsonAtomic(this.settingsFile, next);
    return next;
  }

  /** A change of the egress pool while contexts hold addresses in the old one would leave them unreachable: refused, by name. */
  private refuseEgressPoolChange(cur: NetSettings, next: NetSettings): void {
    if (cur.egressPool4 === undefined || cur.egressPool4 === next.egressPool4) return;
    const h = this.egressHolder(cur);
    if (h !== undefined)
      throw new PaeneError(
        'wrong-state',
        `context '${h.name}' has ${h.address} from the egress pool ${cur.egressPool4}: destroy it (or give it another --ip) first`,
      );
  }

  /** A context of this root holding an address of its egress pool (the first found), or undefined. */
  private egressHolder(s: NetSettings): { name: string; address: string } | undefined {
    for (const n of this.store.names()) {
      try {
        const a = this.store.readConfig(n).net.addresses.find((x) => inEgressPool(s, x));
        if (a !== undefined) return { name: n, address: a };
      } catch {
        /* a broken config owns nothing */
      }
    }
    return undefined;
  }

  /**
   * A private context's published host ports, claimed in the registry of the
   * namespace its NAT lives in: a port another context (of this root or
   * another) publishes is refused by name. Never given back one by one: a
   * claim whose owner's config no longer publishes it is stale.
   */
  private claimPorts(name: string, spec: NetSpec, s: NetSettings): void {
    const me: Owner = { root: this.layout.root, name };
    const reg = this.registry(s.hostNetns);
    reg.locked(() => {
      const keys = spec.publish.map((p) => `${p.proto}-${p.hostPort}`);
      for (const k of keys) {
        const o = reg.otherHolder('port', k, me);
        if (o) throw new PaeneError('exists', `host port ${k.replace('-', ' ')} is already published by ${ownerText(o)}`);
      }
      for (const k of keys) reg.claim('port', k, me);
    });
  }

  private hasPrivateContexts(): boolean {
    for (const n of this.store.names()) {
      try {
        if (this.store.readConfig(n).net.mode === 'private') return true;
      } catch {
        /* a broken config owns nothing */
      }
    }
    return false;
  }

  /**
   * Gives back every host-wide claim of this root: when its last context is
   * destroyed (its private network is gone with it; a later private context
   * leases again, the same names when they are still free).
   */
  releaseHostClaims(): void {
    const s = this.settings();
    const scopes = [this.registry(undefined)];
    if (s.hostNetns !== undefined && fs.existsSync(s.hostNetns)) scopes.push(this.registry(s.hostNetns));
    for (const reg of scopes) {
      reg.locked(() => {
        for (const { kind, key } of reg.ownedBy(this.layout.root)) {
          const o = reg.ownerOf(kind, key);
          if (o) reg.release(kind, key, o);
        }
      });
      reg.prune();
    }
  }

  /**
   * Fills in an address from the pool when the spec has none, and refuses
   * an address another context owns. Called under the global create lock;
   * the caller claims what it returns.
   */
  assign(name: string, spec: NetSpec, book: AddressBook): NetSpec {
    for (const a of spec.addresses) {
      const o = book.holder(a);
      if (o !== undefined && o !== name) throw new PaeneError('exists', `address ${a} is already owned by context '${o}'`);
      const far = spec.mode === 'shared' ? book.elsewhere?.(a) : undefined;
      if (far !== undefined) throw new PaeneError('exists', `address ${a} is already owned by ${far}`);
    }
    // A private context's address comes from the root's own subnet, leased host-wide first; a shared one's
    // from the egress pool when the root has one, claimed again if the root gave its claims back.
    const fromPool = spec.mode === 'shared' && spec.addresses.length === 0;
    const settings = spec.mode === 'private' ? this.privateSettings() : fromPool ? this.egressSettings() : this.settings();
    if (spec.mode === 'shared' && settings.egressPool4 !== undefined) this.claimEgressPool(settings.egressPool4);
    if (spec.mode === 'private' && spec.publish.length > 0) this.claimPorts(name, spec, settings);
    if (spec.addresses.length > 0 || (spec.mode !== 'shared' && spec.mode !== 'private')) return spec;
    const pool = addressPool(spec.mode, settings);
    if (!pool) return spec;
    const addr = book.claimLowest(name, pool.first, pool.last, formatIPv4, pool.skip);
    if (addr === undefined) throw new PaeneError('exists', `no free IPv4 address left in ${pool.cidr}`);
    return { ...spec, addresses: [addr] };
  }

  /** Why this host cannot give a context the shared model's walls, or undefined when it can. */
  sharedUnsupported(unifiedMounted: boolean): string | undefined {
    if (!unifiedMounted)
      return `--net shared needs the unified cgroup hierarchy (cgroup2) mounted, for its BPF address wall; use --net private or none on this host`;
    if (landlockAbi() < LANDLOCK_ABI_SCOPES) {
      return `--net shared needs Landlock ABI ${LANDLOCK_ABI_SCOPES} (Linux 6.12) to keep the context away from the host's abstract unix sockets; this kernel has ABI ${landlockAbi()}. Use --net private or none here`;
    }
    return undefined;
  }

  /** Checks what the mode needs of this host; names the missing wall instead of starting without it. */
  requirements(config: ContextConfig, cg: ContextCgroup): void {
    const mode = config.net.mode;
    if (mode !== 'shared') return;
    const why = this.sharedUnsupported(cg.unifiedDir !== undefined);
    if (why) throw new PaeneError('unsupported', why);
    const local = hostAddresses();
    const s = this.settings();
    for (const a of config.net.addresses) {
      if (familyOf(a) === 4 && a.startsWith('127.')) continue;
      if (inEgressPool(s, a)) continue; // the pool is local on paene-egress (made at start)
      if (!local.includes(a)) {
        throw new PaeneError(
          'invalid-argument',
          `address ${a} of '${config.name}' is not on any host interface: add it first (ip addr add ${a}/${familyOf(a) === 4 ? 32 : 128} dev IFACE)`,
        );
      }
    }
  }

  /**
   * The helper's network flags for start: a namespace of its own (private,
   * none; none's loopback brought up there), or a Landlock scope and the
   * sock_addr programs the helper attaches to the cgroup before the init
   * joins it (shared). In the start request itself: no process of its own.
   */
  startLaunch(config: ContextConfig, cg: ContextCgroup): Pick<StartRequest, 'netns' | 'loUp' | 'landlockScoped' | 'sockAddr'> {
    const m = config.net.mode;
    if (m === 'shared') {
      // its way out (or its refusal) is in place before its first process runs
      if (this.usesEgress(config)) this.refreshEgress(config);
      return {
        landlockScoped: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
        sockAddr: { cgroupDir: cg.unifiedDir as string, progs: sockAddrArgs(buildSockAddr(this.sockAddrPolicy(config))) },
      };
    }
    if (m === 'none') return { netns: 'new', loUp: true };
    return m === 'private' ? { netns: 'new' } : {};
  }

  /** The same for exec: join the init's namespace, or the same scope (a domain of its own: see docs/network.md). */
  execLaunch(config: ContextConfig): Pick<ExecRequest, 'netns' | 'landlockScoped'> {
    const m = config.net.mode;
    if (m === 'shared') return { landlockScoped: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET };
    return m === 'private' || m === 'none' ? { netns: 'join' } : {};
  }

  /** The BPF policy of a shared context. */
  sockAddrPolicy(config: ContextConfig): SockAddrPolicy {
    const s = this.settings();
    const own = new Set(config.net.addresses);
    const published = new Set(s.published);
    const host = hostRefusals(hostAddresses(), new Set([...own, ...published]));
    // The pool's first address is the host's face towards contexts (no context owns it): host clients that
    // want UDP answers send from it, since an answer to 127.0.0.1 stays inside the context.
    const deny4 = host.hostDeny4;
    // the egress pool's face, whether or not paene-egress is up yet (the host's list may predate it)
    if (s.egressPool4 !== undefined && !published.has(reservedAddressOf(s.egressPool4))) deny4.push(reservedAddressOf(s.egressPool4));
    return {
      v4: config.net.addresses.filter((a) => familyOf(a) === 4),
      v6: config.net.addresses.filter((a) => familyOf(a) === 6),
      peerNets4: s.egressPool4 !== undefined ? [s.sharedPool4, s.egressPool4] : [s.sharedPool4],
      hostDeny4: [...new Set(deny4)],
      // every interface has a link-local address of its own (each veth of a Docker host): one net, not a list
      hostDeny6: host.hostDeny6,
      denyNets6: host.denyNets6,
      // with a 127.x address, what it may reach outside 127/8 (the rest would be a bare EINVAL: refused as EPERM)
      hostAllow4: s.published.filter((a) => familyOf(a) === 4),
      denyNets4: this.privateSubnetsHere(s),
    };
  }

  /**
   * The private subnets whose ports are on the stack shared contexts run
   * on (this process's namespace): this root's when it leased one there, and
   * those other roots hold in this namespace's registry. A shared context
   * reaches a private one only through its published host port; directly,
   * its packets would leave by the context's port masqueraded (the egress pool's
   * NAT). A private network leased after a context started is in its list
   * from its next start (docs/network.md).
   */
  private privateSubnetsHere(s: NetSettings): string[] {
    const out = new Set<string>();
    if (s.hostNetns === undefined && s.bridge.table !== undefined) out.add(s.bridge.subnet4);
    try {
      for (const [cidr, o] of this.registry(undefined).live('subnet')) {
        if (o.root === this.layout.root || o.name !== undefined) continue;
        try {
          const raw = JSON.parse(fs.readFileSync(path.join(o.root, 'net.json'), 'utf8')) as {
            bridge?: { subnet4?: string };
            hostNetns?: string;
          };
          if (raw.hostNetns === undefined && raw.bridge?.subnet4 === cidr) out.add(cidr);
        } catch {
          /* a root without net.json holds no private subnet */
        }
      }
    } catch {
      /* no registry yet */
    }
    return [...out].slice(0, 16);
  }

  /** After the init runs (its network namespace exists): plumbing for private and none. */
  async afterStart(config: ContextConfig, initPid: number): Promise<void> {
    // Again once its init runs: a last stop of another context that read the list before it began may have taken the pool down.
    if (config.net.mode === 'shared' && this.usesEgress(config)) this.refreshEgress(config);
    if (config.net.mode !== 'private') return;
    const ns = `/proc/${initPid}/ns/net`;
    const s = this.privateSettings();
    const h = this.host(s);
    const plan = this.plan(config, s);
    this.rulesetLocked(() => {
      try {
        ensureBridge(h, s.bridge);
        // The port's chain is loaded before the port comes up: never a moment unfiltered.
        connectPrivate(h, s.bridge, plan, ns, this.runningPlans(s, config.name));
      } catch (e) {
        this.releasePrivate(config.name, s, plan);
        throw e;
      }
    });
  }

  /** After the context's processes are gone (stop, crash cleanup, failed start): the host side of its network. */
  afterStop(config: ContextConfig, _cg: ContextCgroup): void {
    // A shared context's programs need no detach: every caller removes its cgroup next, and the kernel
    // releases a cgroup's programs with it (a detach here cost a process launch per stop).
    if (config.net.mode === 'shared' && this.usesEgress(config)) this.refreshEgress(undefined, config.name);
    if (config.net.mode !== 'private') return;
    const s = this.settings();
    this.releasePrivate(config.name, s, this.plan(config, s));
  }

  /**
   * A live change of a shared context's addresses: with as many addresses as
   * before (and the same host lists) only its storage value changes;
   * otherwise new programs replace the old ones on its cgroup.
   */
  applyLive(config: ContextConfig, cg: ContextCgroup): void {
    if (config.net.mode !== 'shared' || !cg.unifiedDir) return;
    this.requirements(config, cg);
    applySockAddr(cg.unifiedDir, buildSockAddr(this.sockAddrPolicy(config)));
  }

  /**
   * The root's egress pool, brought in line with its shared contexts
   * (`current`: starting, or a config newer than the stored one; without
   * `leaving`): up while one with an address in it runs, with every
   * --egress none address closed (stopped ones too: the set fails closed
   * whatever starts next), down once none runs. One refresh at a time on
   * this host (the registry's lock). Shared contexts live on this process's
   * stack, so it is this namespace's (not --host-netns). What was loaded
   * last is recorded in the registry's scope (EGRESS_UP/TABLE: the ruleset
   * text): a refresh that would load the same again while the link is there
   * runs no process (a start paid ten `ip` and `nft` runs otherwise);
   * `force` loads anyway (a live `net egress`, which also repairs a table
   * someone removed).
   */
  refreshEgress(current?: ContextConfig, leaving?: string, force = false): void {
    const s = this.settings();
    const pool = s.egressPool4;
    if (pool === undefined) return;
    const reg = this.registry(undefined);
    reg.locked(() => {
      const users: ContextConfig[] = current && current.net.addresses.some((a) => inEgressPool(s, a)) ? [current] : [];
      const idle: ContextConfig[] = [];
      for (const n of this.store.names()) {
        if (n === leaving || n === current?.name) continue;
        try {
          const c = this.store.readConfig(n);
          if (c.net.mode === 'shared' && c.net.addresses.some((a) => inEgressPool(s, a))) users.push(c);
          else continue;
          if (!this.store.live(n)) idle.push(c);
        } catch {
          /* a broken config is reported by list */
        }
      }
      const marker = path.join(reg.dir, EGRESS_UP, egressTableOf(pool));
      if (users.length === idle.length) {
        removeEgress({}, pool);
        fs.rmSync(marker, { force: true });
        try {
          fs.rmdirSync(path.dirname(marker)); // the scope can be pruned once nothing is up
        } catch {
          /* another pool is up, or none was */
        }
        return;
      }
      const closed = users.filter((c) => egressOf(c.net) === 'none').flatMap((c) => c.net.addresses.filter((a) => inEgressPool(s, a)));
      const want = egressRuleset(pool, [...new Set(closed)].sort()); // a paene with other rules loads its own
      if (!force && readText(marker) === want && egressLinkPresent()) return;
      fs.rmSync(marker, { force: true }); // while loading, nothing says it is up
      ensureEgress({}, pool, closed);
      fs.mkdirSync(path.dirname(marker), { recursive: true, mode: 0o700 });
      fs.writeFileSync(marker, want);
    });
  }

  /** Whether a shared context has an address in the root's egress pool. */
  private usesEgress(config: ContextConfig): boolean {
    const s = this.settings();
    return config.net.addresses.some((a) => inEgressPool(s, a));
  }

  /**
   * Whether a context gets a resolv.conf of paene's at start: one given
   * nameservers (`create --dns`), and one that reaches the world (a shared
   * context from the egress pool, a private one, with --egress nat).
   */
  private wantsResolv(config: ContextConfig): boolean {
    const n = config.net;
    if (n.mode !== 'shared' && n.mode !== 'private') return false;
    if (n.dns !== undefined) return true;
    return egressOf(n) === 'nat' && (n.mode === 'private' || this.usesEgress(config));
  }

  /** The resolv.conf a context gets, or why none can be made (`undefined`: it gets none, its image's own stays). */
  resolvConf(config: ContextConfig): { text: string } | { why: string } | undefined {
    if (!this.wantsResolv(config)) return undefined;
    const r = guestResolv(readHostResolvConfs(), config.net.dns ?? this.settings().dns);
    return 'why' in r ? r : { text: formatResolvConf(r.conf) };
  }

  /** What create says about DNS: a warning when a context that reaches the world will get no working resolver. */
  warnDns(config: ContextConfig): void {
    const r = this.resolvConf(config);
    if (r !== undefined && 'why' in r) warnOnce('dns', dnsWarning(r.why));
  }

  /**
   * At start: the context's resolv.conf written (atomically) beside its
   * config, as the bind the start makes read-only over the guest's
   * /etc/resolv.conf; none when it gets none (a warning when it should).
   */
  resolvBinds(config: ContextConfig): BindMount[] {
    const r = this.resolvConf(config);
    const file = path.join(this.layout.contextDir(config.name), 'resolv.conf');
    if (r === undefined || 'why' in r) {
      if (r !== undefined) warnOnce('dns', dnsWarning(r.why));
      fs.rmSync(file, { force: true });
      return [];
    }
    writeFileAtomic(file, r.text, 0o644, false);
    return [{ source: file, target: '/etc/resolv.conf', readonly: true, kind: 'file' }];
  }

  /** A live change of a running context's egress (nat or none): shared through the pool's table, private through its root's ruleset. */
  applyEgress(config: ContextConfig): void {
    if (config.net.mode === 'shared') {
      if (this.usesEgress(config)) this.refreshEgress(config, undefined, true);
    } else if (config.net.mode === 'private') {
      const s = this.privateSettings();
      this.rulesetLocked(() => loadRuleset(this.host(s), s.bridge, [...this.runningPlans(s, config.name), this.plan(config, s)]));
    }
  }

  /** What of paene's private networking is still on the host side (leak checks). */
  leftovers(): string[] {
    const s = this.settings();
    const egress = s.egressPool4 !== undefined ? egressLeftovers({}, s.egressPool4) : [];
    if (s.bridge.table === undefined) return egress; // never leased a private network: nothing of it is its own
    return [...leftovers(this.host(s), s.bridge), ...egress];
  }

  private releasePrivate(name: string, s: NetSettings, plan: PrivateNetPlan): void {
    const h = this.host(s);
    this.rulesetLocked(() => {
      disconnectPrivate(h, plan);
      const rest = this.runningPlans(s, name);
      loadRuleset(h, s.bridge, rest);
      if (rest.length === 0) removeBridgeIfUnused(h, s.bridge);
    });
  }

  /**
   * Runs `fn` holding the root's ruleset lock: the ruleset is replaced whole
   * from the list of running contexts, so two starts or stops at once would
   * each load a list without the other's port (its traffic cut off). Held
   * while a port is made or removed and the list read and loaded; never
   * around a registry call (which takes the registry's lock). Synchronous,
   * so re-entry can only be this call's own.
   */
  private rulesetLocked<T>(fn: () => T): T {
    if (this.rulesetHeld) return fn();
    fs.mkdirSync(this.layout.locksDir, { recursive: true });
    const lock = acquireFileLockSync(
      path.join(this.layout.locksDir, '.net.lock'),
      30_000,
      (pid) => `another paene (pid ${pid}) is changing this root's private network rules; try again`,
    );
    this.rulesetHeld = true;
    try {
      return fn();
    } finally {
      this.rulesetHeld = false;
      lock.release();
    }
  }

  private host(s: NetSettings): NetHost {
    return s.hostNetns ? { hostNetns: s.hostNetns } : {};
  }

  private plan(config: ContextConfig, s: NetSettings): PrivateNetPlan {
    const address4 = config.net.addresses[0];
    if (!address4) throw new PaeneError('internal', `private context '${config.name}' has no address`);
    return planPrivateNet(s.bridge, {
      name: config.name,
      xid: config.xid,
      address4,
      publish: config.net.publish,
      egress: egressOf(config.net),
    });
  }

  /** Plans of the other running private contexts of this root (the ruleset holds all of them). */
  private runningPlans(s: NetSettings, except: string): PrivateNetPlan[] {
    const out: PrivateNetPlan[] = [];
    for (const n of this.store.names()) {
      if (n === except) continue;
      try {
        const c = this.store.readConfig(n);
        if (c.net.mode === 'private' && this.store.live(n)) out.push(this.plan(c, s));
      } catch {
        /* a broken config is reported by list, not here */
      }
    }
    return out;
  }
}

/**
 * Whether the owner a registry claim names still says it holds it: a
 * context's address while its root's own claim (ROOT/addrs/ADDR) names
 * it; a root's bridge, table, veth prefix and subnet while its net.json
 * does. A removed root holds nothing.
 */
export function stillHeld(kind: ClaimKind, key: string, o: Owner, ageMs = Number.POSITIVE_INFINITY): boolean {
  try {
    if (kind === 'addr') return o.name !== undefined && fs.readlinkSync(path.join(o.root, 'addrs', key)) === o.name;
    if (kind === 'port') {
      // its config publishes it; a create in progress has no config yet: a claim younger than that counts
      if (o.name === undefined) return false;
      const said = (file: string) => {
        const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { net?: { mode?: string; publish?: { hostPort: number; proto: string }[] } };
        return c.net?.mode === 'private' && (c.net.publish ?? []).some((p) => `${p.proto}-${p.hostPort}` === key);
      };
      const contexts = path.join(o.root, 'contexts');
      if (fs.existsSync(path.join(contexts, o.name, 'config.json'))) return said(path.join(contexts, o.name, 'config.json'));
      return ageMs < CREATE_GRACE_MS;
    }
    if (o.name !== undefined) return false;
    // A root writes its net.json after its claims, outside the registry's lock: a claim that young counts as
    // held, or another root would judge it stale in between and take the same subnet (or refuse its own pick).
    if (ageMs < LEASE_GRACE_MS) return true;
    const raw = JSON.parse(fs.readFileSync(path.join(o.root, 'net.json'), 'utf8')) as { bridge?: BridgeConfig; egressPool4?: string };
    if (kind === 'subnet' && raw.egressPool4 === key) return true;
    const b = raw.bridge;
    if (b === undefined || b.table === undefined) return false; // never leased
    const said = { bridge: b.bridge, subnet: b.subnet4, table: tableOf(b), prefix: portPrefixOf(b) }[kind];
    return said === key;
  } catch {
    return ageMs < LEASE_GRACE_MS; // no net.json yet: a first lease in progress
  }
}

/** How long a root's bridge, subnet or pool claim counts as held before its net.json says it (written just after). */
const LEASE_GRACE_MS = 30_000;

/** How long a port claim without its owner's config counts as a create in progress (an image build included). */
const CREATE_GRACE_MS = 10 * 60_000;

/** Every address on the host's interfaces (this process's network namespace). */
export function hostAddresses(): string[] {
  // Asked twice per start of a shared context (its check and its policy), and a start of many asks it for each:
  // read at most every HOST_ADDRESSES_TTL_MS.
  const now = Date.now();
  if (hostAddressCache && now - hostAddressCache.at < HOST_ADDRESSES_TTL_MS) return hostAddressCache.list;
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) out.push(a.family === 'IPv6' ? (a.address.split('%')[0] as string) : a.address);
  }
  const list = [...new Set(out)];
  hostAddressCache = { at: now, list };
  return list;
}

const HOST_ADDRESSES_TTL_MS = 1000;
let hostAddressCache: { at: number; list: string[] } | undefined;

/**
 * Makes a new state root keep the 127.x pool (egress pool none) unless it
 * has network settings already: for benchmarks and tests, which must not add
 * a paene-egress link or an nft table to the host they run on, and whose
 * figures stay those of the shared model alone.
 */
export function keepRootOffEgress(root: string): void {
  const file = path.join(root, 'net.json');
  if (fs.existsSync(file)) return;
  fs.mkdirSync(root, { recursive: true });
  writeJsonAtomic(file, { egressAuto: false });
}
