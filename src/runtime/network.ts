// A context's network through its life: the address it gets at create, the
// walls put up before its init runs, the plumbing after, and what is taken
// down when it stops. One module per model does the kernel work:
//   shared   cgroup BPF sock_addr programs (core/sockaddr + kernel/bpf),
//            a Landlock scope for abstract unix sockets, no sock_diag (seccomp)
//   private  a network namespace, veth into the bridge, NAT (net/bridge)
//   none     a network namespace with loopback only
//   host     nothing (privileged profile only)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type PrivateNetPlan, formatIPv4, planPrivateNet } from '../net/bridgeplan.js';
import { PaeneError } from '../model/errors.js';
import { type NetSettings, type NetSpec, addressPool, defaultNetSettings, familyOf, validateNetSettings } from '../net/model.js';
import { type SockAddrPolicy, buildSockAddr } from '../net/sockaddr.js';
import type { ContextConfig } from '../context/config.js';
import { applySockAddr, sockAddrArgs } from '../kernel/bpf.js';
import type { ContextCgroup } from '../cgroups/cgroups.js';
import { type ExecRequest, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, type StartRequest, landlockAbi } from '../kernel/helper.js';
import { writeJsonAtomic } from '../kernel/atomic.js';
import { DEFAULT_ROOT, type Layout } from '../kernel/layout.js';
import type { StateStore } from './state.js';

/** Who holds which address (the runtime's address claims): read without reading every config. */
export interface AddressBook {
  holder(address: string): string | undefined;
  /** claims the lowest free address of a range (numbers) for a context; undefined when none is free */
  claimLowest(name: string, first: number, last: number, keyOf: (n: number) => string, skip: ReadonlySet<number>): string | undefined;
}
import {
  type NetHost,
  connectPrivate,
  disconnectPrivate,
  ensureBridge,
  leftovers,
  loadRuleset,
  removeBridgeIfUnused,
} from '../net/bridge.js';

/** Landlock ABI 6 (Linux 6.12) brought the abstract unix socket scope. */
const LANDLOCK_ABI_SCOPES = 6;

export class ContextNetwork {
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
    const next = validateNetSettings({ ...cur, ...change }, cur, 'network settings');
    fs.mkdirSync(this.layout.root, { recursive: true });
    writeJsonAtomic(this.settingsFile, next);
    return next;
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
    }
    if (spec.addresses.length > 0 || (spec.mode !== 'shared' && spec.mode !== 'private')) return spec;
    const pool = addressPool(spec.mode, this.settings());
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
    for (const a of config.net.addresses) {
      if (familyOf(a) === 4 && a.startsWith('127.')) continue;
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
    const hostOnly = hostAddresses().filter((a) => !own.has(a) && !published.has(a) && !a.startsWith('127.') && a !== '::1');
    // The pool's first address is the host's face towards contexts (no context owns it): host clients that
    // want UDP answers send from it, since an answer to 127.0.0.1 stays inside the context.
    const deny4 = hostOnly.filter((a) => familyOf(a) === 4);
    return {
      v4: config.net.addresses.filter((a) => familyOf(a) === 4),
      v6: config.net.addresses.filter((a) => familyOf(a) === 6),
      peerNets4: [s.sharedPool4],
      hostDeny4: [...new Set(deny4)],
      hostDeny6: hostOnly.filter((a) => familyOf(a) === 6),
    };
  }

  /** After the init runs (its network namespace exists): plumbing for private and none. */
  async afterStart(config: ContextConfig, initPid: number): Promise<void> {
    if (config.net.mode !== 'private') return;
    const ns = `/proc/${initPid}/ns/net`;
    const s = this.settings();
    const h = this.host(s);
    const plan = this.plan(config, s);
    ensureBridge(h, s.bridge);
    // The port's filter is loaded before the port exists: never a moment unfiltered.
    loadRuleset(h, s.bridge, [...this.runningPlans(s, config.name), plan]);
    try {
      connectPrivate(h, s.bridge, plan, ns);
    } catch (e) {
      this.releasePrivate(config.name, s, plan);
      throw e;
    }
  }

  /** After the context's processes are gone (stop, crash cleanup, failed start): the host side of its network. */
  afterStop(config: ContextConfig, _cg: ContextCgroup): void {
    // A shared context's programs need no detach: every caller removes its cgroup next, and the kernel
    // releases a cgroup's programs with it (a detach here cost a process launch per stop).
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

  /** What of paene's private networking is still on the host side (leak checks). */
  leftovers(): string[] {
    const s = this.settings();
    return leftovers(this.host(s), s.bridge);
  }

  private releasePrivate(name: string, s: NetSettings, plan: PrivateNetPlan): void {
    const h = this.host(s);
    disconnectPrivate(h, plan);
    const rest = this.runningPlans(s, name);
    loadRuleset(h, s.bridge, rest);
    if (rest.length === 0) removeBridgeIfUnused(h, s.bridge);
  }

  private host(s: NetSettings): NetHost {
    return s.hostNetns ? { hostNetns: s.hostNetns } : {};
  }

  private plan(config: ContextConfig, s: NetSettings): PrivateNetPlan {
    const address4 = config.net.addresses[0];
    if (!address4) throw new PaeneError('internal', `private context '${config.name}' has no address`);
    return planPrivateNet(s.bridge, { name: config.name, xid: config.xid, address4, publish: config.net.publish });
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
