// The context lifecycle: create, start, exec, stop, destroy, and the views
// (list, status, ps). Every verb that changes a context holds its lock.
//
// Who does what when a context is born:
//   this process   writes config/state, creates the cgroups, applies limits
//   monitor        (native, one per state root, a subreaper) forks a handler
//   handler        joins the cgroups, unshares mnt/uts/ipc/pid, forks init
//   init (pid 1)   mounts the overlay root, /proc, /sys, /dev, /tmp, masks,
//                  makes that tree its namespace's root (a copy of the
//                  monitor's staging namespace: no pivot_root per start),
//                  loads seccomp, drops capabilities,
//                  reports ready, then reaps orphans until SIGTERM
// and dies: SIGTERM to init (which passes it on), then cgroup kill of any
// straggler, cgroup removal. The mounts live only in the context's mount
// namespace, so they vanish with its last process, also after a crash.

import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, type StdioOptions, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { capMask } from '../model/caps.js';
import { PaeneError } from '../model/errors.js';
import { type CgroupWrite, cgroupWrites, freshWrites, ipcSysctls, ownControllers, schedOf } from '../cgroups/map.js';
import type { ResourceLimits } from '../model/limits.js';
import type { MountSpec } from '../model/mounts.js';
import { type NetSpec, canonicalIp, netGaps, validateNetSpec } from '../net/model.js';
import {
  type ContextConfig,
  DEVICE_NODES,
  MASKED_PATHS,
  deviceAllowList,
  isPerContextSysctl,
  type NewContext,
  READONLY_PATHS,
  checkNetAgainstCaps,
  guestEnv,
  newConfig,
  validateName,
  writablePaths,
  XID_MIN,
} from '../context/config.js';
import { ContextCgroup, type CgroupHost, detectCgroupHost, limitsVersion, removeParentIfEmpty } from '../cgroups/cgroups.js';
import { type ImageRunConfig, planProcess, resolveUser } from '../image/ociplan.js';
import { guestFile } from './guestfile.js';
import { createDiskImage, mountDiskImage, unmountDiskImage } from '../kernel/diskimage.js';
import { prepareScratch, releaseScratch, removeScratch, type ScratchLock } from '../kernel/scratch.js';
import { requireFeatures, requireRoot } from '../kernel/features.js';
import {
  HelperRefusal,
  type LogLaunch,
  type MainLaunch,
  Monitor,
  execArgs,
  execPlanBytes,
  helperPath,
  nativePath,
  startArgs,
} from '../kernel/helper.js';
import { DEFAULT_LOG, DEFAULT_RESTART, GUEST_INIT_STOP, GUEST_RUN_TMPFS_BYTES, type MainState, RESTART_BACKOFF } from '../model/service.js';
import { guestInitFlavor } from './guestinit.js';
import { readMainState } from './mainstate.js';
import { writeFileAtomic } from '../kernel/atomic.js';
import { allPids, cmdline, innerPid, isAlive, processMemory, readStat } from '../kernel/procfs.js';
import { guardForks, unguardForks } from './forkbackoff.js';
import { blockDevicesFor, startIoThrottle, stopIoThrottle } from './iothrottle.js';
import { ContextNetwork } from './network.js';
import { Layout } from '../kernel/layout.js';
import { withLock } from './lock.js';
import { checkMounts, startBinds } from './mounts.js';
import { StateStore } from './state.js';
import { type Claims, hostAddressClaims } from './claims.js';
import { XidClaims } from './xids.js';
import { HELPER_ERRORS } from '../proto/helper-reply.js';
import { parseReply } from '../proto/tokens.js';

/** How the runtime gets an image's root filesystem (the image store implements it). */
export interface ImageSource {
  /** The directory to use as the overlay's read-only lower layer; builds the default image if missing. */
  rootfsOf(image: string): Promise<string>;
  /** How the image says to run it (an imported OCI/docker image's config): the default of exec. */
  defaultsOf?(image: string): ImageDefaults | undefined;
  /** UID[:GID] or NAME[:GROUP] against the image's /etc/passwd and /etc/group */
  resolveUser?(image: string, spec: string): { uid: number; gid: number };
}

export interface ImageDefaults {
  run: ImageRunConfig;
  /** the config's User, resolved against the image's own /etc/passwd (only when no --user overrides it) */
  user?: () => { uid: number; gid: number };
}

/** Per-context extras computed from the config by other modules (seccomp filter). */
export interface Policy {
  seccomp(config: ContextConfig): Buffer | undefined;
}

export type ContextState = 'running' | 'stopped';

export interface ContextStatus {
  name: string;
  xid: number;
  image: string;
  hostname: string;
  state: ContextState;
  /** host pid of the context's init, when running */
  pid?: number;
  processes: number;
  started?: string;
  created: string;
  cgroup: string;
  /** its network model and what it owns (docs/network.md); `host` has no wall */
  net: NetSpec;
  /** what its network model does not hide or block on this kernel, named rather than left silent */
  netGaps?: string[];
  /** its main process (docs/services.md): the command, and what the host knows of it; absent: it has none */
  main?: { argv: string[]; restart: string } & Partial<MainState>;
  /** its bind mounts and volumes (docs/volumes.md), as its config holds them; absent: none */
  mounts?: readonly MountSpec[];
}

export interface ProcessInfo {
  context: string; // '' for the host
  xid: number; // 0 for the host
  pid: number; // host pid
  innerPid: number; // pid inside the context (same as pid on the host)
  ppid: number;
  state: string;
  command: string;
}

export interface ExecOptions {
  tty?: boolean;
  /** ids, or UID[:GID] / NAME[:GROUP] looked up in the guest's /etc/passwd and /etc/group */
  user?: { uid: number; gid: number } | string;
  cwd?: string;
  env?: Record<string, string>;
  /** a child group of the context's unified cgroup (made by the caller) that the command joins instead: the API's exec kills by it */
  cgroupLeaf?: string;
}

/** Devices a context may use (v1 devices cgroup): the nodes its /dev has, and its ptys (context/config.ts owns the list). */
export const DEVICE_RULES: CgroupWrite[] = [
  { controller: 'devices', file: 'devices.deny', value: 'a' },
  ...deviceAllowList().map((value) => ({ controller: 'devices', file: 'devices.allow', value })),
];

/** What `create` is asked: a new context's spec; without an xid it gets the lowest free one. */
export type NewRequest = Omit<NewContext, 'xid'> & { xid?: number };

/** Creates per hold of the global create lock in `createEach`. */
const CREATE_BATCH = 64;

export interface RuntimeOptions {
  root: string;
  images: ImageSource;
  policy?: Policy;
}

export class Runtime {
  readonly layout: Layout;
  readonly store: StateStore;
  readonly monitor: Monitor;
  readonly network: ContextNetwork;
  readonly xids: XidClaims;
  /** which context holds which address (shared pool, bridge subnet, host addresses) */
  readonly addrs: Claims;
  private readonly images: ImageSource;
  private readonly policy: Policy;
  private hostCache?: CgroupHost;

  constructor(opts: RuntimeOptions) {
    this.layout = new Layout(opts.root);
    this.store = new StateStore(this.layout);
    this.monitor = new Monitor(path.join(this.layout.root, 'run'));
    this.network = new ContextNetwork(this.layout, this.store);
    this.xids = new XidClaims(this.store);
    this.addrs = hostAddressClaims(this.store, this.network); // seen host-wide: no two state roots hand out one address
    this.images = opts.images;
    this.policy = opts.policy ?? { seccomp: () => undefined };
  }

  get cgroupHost(): CgroupHost {
    this.hostCache ??= detectCgroupHost();
    return this.hostCache;
  }

  cgroupOf(name: string): ContextCgroup {
    return new ContextCgroup(this.cgroupHost, this.layout.cgroupParent, name);
  }

  /** Mounting and unmounting the root's scratch tmpfs (kernel/scratch.ts), one paene at a time. */
  private readonly scratchLock: ScratchLock = (fn) => withLock(this.lockFile('.scratch'), { what: 'the scratch tmpfs' }, fn);

  /** Under the lock of the context list: creates hold it, and volumes (a create naming a volume never races its removal). */
  withListLock<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(this.lockFile('.create'), { what: 'the context list' }, fn);
  }

  private lockFile(name: string): string {
    fs.mkdirSync(this.layout.locksDir, { recursive: true });
    return path.join(this.layout.locksDir, `${name}.lock`);
  }

  /** Runs `fn` holding the context's lock (every verb that changes a context does). */
  withContextLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return withLock(this.lockFile(name), { what: `context '${name}'` }, fn);
  }

  // ------------------------------------------------------------ create

  async create(req: NewRequest): Promise<ContextConfig> {
    const [r] = await this.createEach([req]);
    if (r instanceof Error) throw r;
    return r as ContextConfig;
  }

  /**
   * Creates several contexts in one hold of the global create lock (released
   * every CREATE_BATCH, so another paene's create waits seconds, not minutes).
   * Each result is the new config or the error that refused that one; the
   * others go on.
   */
  async createEach(reqs: NewRequest[], onEach?: (i: number, r: ContextConfig | Error) => void): Promise<(ContextConfig | Error)[]> {
    requireRoot('creating a context');
    const out: (ContextConfig | Error)[] = [];
    for (let at = 0; at < reqs.length; at += CREATE_BATCH) {
      // Name and xid must be unique across concurrent creates: one global lock.
      const batch = async () => {
        for (const req of reqs.slice(at, at + CREATE_BATCH)) {
          let r: ContextConfig | Error;
          try {
            r = await this.createLocked(req);
          } catch (e) {
            r = e instanceof Error ? e : new Error(String(e));
          }
          onEach?.(out.length, r);
          out.push(r);
        }
      };
      await withLock(this.lockFile('.create'), { what: 'the context list' }, () => this.xids.batch(() => this.addrs.batch(batch)));
    }
    return out;
  }

  private async createLocked(req: NewRequest): Promise<ContextConfig> {
    validateName(req.name);
    if (this.store.exists(req.name)) throw new PaeneError('exists', `a context named '${req.name}' already exists`);
    // No model asked for: shared where the host has its walls, else none (a refusal would make the default unusable there).
    const net =
      req.net ??
      (this.network.sharedUnsupported(this.cgroupHost.unified !== undefined)
        ? { mode: 'none' as const, addresses: [], publish: [] }
        : undefined);
    // Validate everything before the xid is claimed, so a refusal leaves no claim behind.
    const draft = newConfig({ ...req, xid: req.xid ?? XID_MIN, net });
    checkMounts(this.layout, draft.mounts); // sources and volumes, under the list lock a volume's removal takes
    const assigned = this.network.assign(draft.name, draft.net, this.addrs);
    // A pool address is claimed by assign itself: every refusal from here on gives it back (issue 24: a missing
    // image leaked one address per failed create).
    const claimed = assigned.addresses.filter((a) => !draft.net.addresses.includes(a));
    let init: ContextConfig['init'];
    let xid: number;
    try {
      // Build the image now (if it is the default and missing) so `start` is quick and errors show early.
      const tree = await this.images.rootfsOf(draft.image);
      // A guest init is found and classified now: one that cannot boot (or be stopped) here is refused at create.
      init = draft.init?.kind === 'guest' ? { ...draft.init, flavor: guestInitFlavor(tree, draft.init.path, draft.image) } : draft.init;
      xid = this.xids.claim(draft.name, req.xid);
    } catch (e) {
      for (const a of claimed) this.addrs.release(draft.name, a);
      throw e;
    }
    const config: ContextConfig = { ...draft, xid, net: assigned, ...(init ? { init } : {}) };
    this.network.warnDns(config); // one that reaches the world with no resolver to write: said now, not at its first lookup
    const dir = this.layout.contextDir(config.name);
    const tmp = path.join(this.layout.contextsDir, `.${config.name}.creating.${process.pid}`);
    try {
      for (const a of assigned.addresses) {
        this.addrs.claim(config.name, a);
        if (!claimed.includes(a)) claimed.push(a);
      }
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { recursive: true, mode: 0o700 });
      for (const sub of ['layer', 'rootfs']) fs.mkdirSync(path.join(tmp, sub));
      // With a disk limit the layer is the context's own filesystem, made now so errors show at create.
      if (config.disk) createDiskImage(path.join(tmp, 'disk.img'), config.disk);
      fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
      fs.renameSync(tmp, dir); // publish whole: a crash leaves either nothing or a complete context
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      this.xids.release(config.name, xid);
      for (const a of claimed) this.addrs.release(config.name, a);
      throw e;
    }
    return config;
  }

  /**
   * The one way a context's config changes (limits, hostname, capabilities):
   * under its lock, read the config and whether it runs, compute the next
   * one, apply it to the running context first (a value the kernel refuses
   * never reaches the file), write it, then run `after` (still locked) for
   * what needs the saved config. Two concurrent changes never lose one.
   */
  async changeConfig(
    name: string,
    change: (cur: ContextConfig, running: boolean) => ContextConfig,
    hooks: {
      applyLive?: (next: ContextConfig, cur: ContextConfig) => Promise<void> | void;
      after?: (next: ContextConfig, running: boolean) => Promise<void> | void;
    } = {},
  ): Promise<ContextConfig> {
    return this.withContextLock(name, async () => {
      const cur = this.store.readConfig(name);
      const running = this.store.live(name) !== undefined;
      const next = change(cur, running);
      if (running && hooks.applyLive) await hooks.applyLive(next, cur);
      this.store.writeConfig(next);
      const live = running ? this.store.live(name) : undefined;
      if (live) this.writeExecPlan(next, live.pid, live.starttime); // the front door enters with the new policy
      await hooks.after?.(next, running);
      return next;
    });
  }

  // ----------------------------------------------------------- network

  /** Changes a stopped context's network model and addresses (they apply at start). */
  async setNet(name: string, spec: NetSpec): Promise<ContextConfig> {
    return this.withContextLock(name, async () => {
      const cur = this.store.readConfig(name);
      if (this.store.live(name)) {
        throw new PaeneError(
          'wrong-state',
          `context '${name}' is running: stop it first ('paene stop ${name}'); its network model is fixed when it starts (addresses of a shared context change live with 'paene net add|rm')`,
        );
      }
      return this.withAddresses(name, checkNetAgainstCaps(spec, cur.caps), (net) => {
        const next = { ...cur, net };
        this.store.writeConfig(next);
        return next;
      });
    });
  }

  /** Adds or removes an address of a shared context; a running one gets new BPF programs at once. */
  async changeAddress(name: string, op: 'add' | 'rm', address: string): Promise<ContextConfig> {
    const addr = canonicalIp(address);
    return this.withContextLock(name, async () => {
      const cur = this.store.readConfig(name);
      if (cur.net.mode !== 'shared') {
        throw new PaeneError(
          'invalid-argument',
          `'${name}' uses --net ${cur.net.mode}: only shared contexts change addresses live (a private one's changes with 'paene net set ${name} --ip ADDR' while stopped)`,
        );
      }
      let addresses: string[];
      if (op === 'add') {
        if (cur.net.addresses.includes(addr)) return cur;
        addresses = [...cur.net.addresses, addr];
      } else {
        if (!cur.net.addresses.includes(addr))
          throw new PaeneError('not-found', `'${name}' does not own ${addr} (it owns ${cur.net.addresses.join(', ') || 'nothing'})`);
        addresses = cur.net.addresses.filter((a) => a !== addr);
        if (addresses.length === 0)
          throw new PaeneError(
            'invalid-argument',
            `${addr} is the last address of '${name}': a shared context owns at least one (add another first)`,
          );
      }
      return this.withAddresses(name, validateNetSpec({ ...cur.net, addresses }, 'network'), (net) => {
        const next = { ...cur, net };
        // The kernel first: a refused address leaves the stored config as it was.
        if (this.store.live(name)) this.network.applyLive(next, this.cgroupOf(name));
        this.store.writeConfig(next);
        return next;
      });
    });
  }

  /**
   * Every address assignment: under the global create lock, checked against
   * (and filled in from the pool beside) the other contexts' addresses, and
   * `commit` runs before the lock is released, so two changes never take one
   * address. A config that cannot be read owns nothing here (`list` reports it).
   */
  private withAddresses<T>(name: string, spec: NetSpec, commit: (net: NetSpec) => T): Promise<T> {
    return withLock(this.lockFile('.create'), { what: 'the context list' }, async () => {
      const before = this.store.readConfig(name).net.addresses;
      const net = this.network.assign(name, spec, this.addrs);
      // Claim the new ones before the config says them; give back the dropped ones after it no longer does.
      const added: string[] = [];
      try {
        for (const a of net.addresses.filter((x) => !before.includes(x))) {
          this.addrs.claim(name, a);
          added.push(a);
        }
        const out = commit(net);
        for (const a of before.filter((x) => !net.addresses.includes(x))) this.addrs.release(name, a);
        return out;
      } catch (e) {
        for (const a of added) this.addrs.release(name, a);
        throw e;
      }
    });
  }

  // ------------------------------------------------------------- start

  async start(name: string): Promise<ContextStatus> {
    requireRoot('starting a context');
    requireFeatures();
    return this.withContextLock(name, async () => {
      const live = this.store.live(name);
      if (live) throw new PaeneError('wrong-state', `context '${name}' is already running (init pid ${live.pid})`);
      const config = await this.addressed(name);
      await this.cleanupLeftovers(name, config);
      const lower = await this.images.rootfsOf(config.image);
      const cg = this.cgroupOf(name);
      this.network.requirements(config, cg);
      this.prepareLayer(config);
      const main = this.mainLaunch(config);
      if (main || config.init?.kind === 'guest') fs.mkdirSync(this.layout.logDir(name), { recursive: true, mode: 0o700 });
      fs.rmSync(this.layout.stoppedMark(name), { force: true });
      const makeGroups = () =>
        cg.create(ownControllers(config.limits, limitsVersion(this.cgroupHost)), this.cgroupHost.v1.has('devices') ? DEVICE_RULES : []);
      makeGroups();
      try {
        cg.apply(this.cgroupPlan(config, cg));
        const scratch = await prepareScratch(this.layout, name, this.scratchLock); // held until the helper has bound it
        let answer = '';
        try {
          // The last destroy of another context may remove the shared groups (v1 _shared) between
          // makeGroups and the helper's join: it looked for a context's group before ours was made.
          // Nothing of the start has happened then (the handler dies at the join): make them again, ask again.
          for (let attempt = 1; ; attempt++) {
            try {
              answer = await this.monitor.request(
                startArgs({
                  cgroupProcs: cg.procsFiles(),
                  lower,
                  upper: this.layout.upperDir(name),
                  work: this.layout.workDir(name),
                  rootfs: this.layout.rootfsDir(name),
                  hostname: config.hostname,
                  sysctls: ipcSysctls(config.limits),
                  masked: MASKED_PATHS,
                  readonly: READONLY_PATHS,
                  writable: writablePaths(config),
                  scratch: scratch.dir,
                  empty: this.layout.emptyDir,
                  init: nativePath('paene-init'),
                  devices: DEVICE_NODES,
                  capsMask: contextCaps(config),
                  seccomp: this.policy.seccomp(config),
                  ...this.network.startLaunch(config, cg),
                  sched: launchSched(config),
                  ...this.serviceLaunch(config, main),
                  // the context's mounts, then its resolv.conf when it reaches the world (written now, bound read-only)
                  binds: startBinds(this.layout, config, this.network.resolvBinds(config)),
                }),
              );
              break;
            } catch (e) {
              if (attempt >= 3 || !joinFoundNoGroup(e)) throw e;
              makeGroups();
            }
          }
        } finally {
          scratch.release();
        }
        const pid = Number(answer);
        const st = readStat(pid);
        if (!Number.isInteger(pid) || pid <= 0 || !st)
          throw new PaeneError('internal', `the context init died right after start (${answer})`);
        this.store.writeState(name, { pid, starttime: st.starttime, started: new Date().toISOString() });
        this.writeExecPlan(config, pid, st.starttime);
        await this.network.afterStart(config, pid);
        // paene's own write throttler where the kernel cannot limit buffered writes (no-op without I/O limits).
        await startIoThrottle(this, name, config);
        // A spinning fork bomb is held back by the monitor (on by default).
        await guardForks(this, name, config.limits, pid);
      } catch (e) {
        await cg.killAll().catch(() => undefined);
        try {
          this.network.afterStop(config, cg);
        } catch {
          /* the start's own error is the one to report */
        }
        await cg.remove().catch(() => undefined);
        this.store.clearState(name);
        if (config.disk) unmountDiskImage(this.layout.layerDir(name));
        const msg = e instanceof Error ? e.message : String(e);
        throw new PaeneError(
          e instanceof PaeneError && e.code !== 'internal' ? e.code : 'internal',
          `cannot start context '${name}': ${msg}`,
          { cause: e },
        );
      }
      return this.status(name);
    });
  }

  /**
   * The config, with an address from the pool if its mode needs one and it
   * has none (a config written before network contexts existed). Under the
   * global create lock, like every address assignment.
   */
  private async addressed(name: string): Promise<ContextConfig> {
    const config = this.store.readConfig(name);
    if (config.net.addresses.length > 0 || (config.net.mode !== 'shared' && config.net.mode !== 'private')) return config;
    return this.withAddresses(name, config.net, (net) => {
      const next = { ...config, net };
      this.store.writeConfig(next);
      return next;
    });
  }

  /**
   * The main process a start hands the init (docs/services.md): the config's
   * command (after the image's Entrypoint, as docker run does) or the image's
   * Entrypoint + Cmd, with the image's Env, WorkingDir and User under the
   * config's; none when neither names a command, or the guest's init is pid 1.
   */
  mainLaunch(config: ContextConfig): MainLaunch | undefined {
    const argv = this.mainArgv(config);
    if (!argv) return undefined;
    const spec = config.main === 'none' ? {} : (config.main ?? {});
    const image = this.images.defaultsOf?.(config.image);
    const plan = planProcess(image?.run, { argv, env: spec.env, cwd: spec.cwd }, config.image);
    const userSpec = spec.user ?? plan.user;
    let user = { uid: 0, gid: 0 };
    if (userSpec !== undefined) {
      user = spec.user === undefined && image?.user ? image.user() : this.resolveUser(config.image, userSpec);
    }
    const restart = config.restart ?? DEFAULT_RESTART;
    return {
      argv: plan.argv,
      env: guestEnv(config, plan.env),
      cwd: plan.cwd,
      uid: user.uid,
      gid: user.gid,
      restart: restart.mode === 'unless-stopped' ? 'always' : restart.mode,
      maxRestarts: restart.maxRestarts ?? 0,
      backoff: RESTART_BACKOFF,
    };
  }

  /** The main process's command line (what status shows): no user lookup, no environment. */
  private mainArgv(config: ContextConfig): string[] | undefined {
    if (config.main === 'none' || config.init?.kind === 'guest') return undefined;
    const run = this.images.defaultsOf?.(config.image)?.run;
    const entry = run?.entrypoint ?? [];
    const argv = config.main?.argv ? [...entry, ...config.main.argv] : [...entry, ...(run?.cmd ?? [])];
    return argv.length > 0 ? argv : undefined;
  }

  /** What a start asks of the init and the log writer: a main process, or the guest's init and its console. */
  private serviceLaunch(config: ContextConfig, main: MainLaunch | undefined) {
    const spec = config.log ?? DEFAULT_LOG;
    const log = (stream: LogLaunch['stream']): LogLaunch => ({
      prog: nativePath('paene-log'),
      dir: this.layout.logDir(config.name),
      maxBytes: spec.maxBytes,
      keep: spec.keep,
      stream,
    });
    if (config.init?.kind === 'guest') {
      // What an init expects of a container (systemd's and lxc's convention): container= names the manager.
      const env = guestEnv(config, { container: 'paene', TERM: 'linux' }).filter((e) => !e.startsWith('PAENE_'));
      return { guestInit: { path: config.init.path, env }, log: log('console'), runTmpfs: GUEST_RUN_TMPFS_BYTES };
    }
    return main ? { main, log: log('stdout') } : {};
  }

  private resolveUser(image: string, spec: string): { uid: number; gid: number } {
    const m = /^(\d+)(?::(\d+))?$/.exec(spec);
    if (m) return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
    if (!this.images.resolveUser) throw new PaeneError('invalid-argument', `user '${spec}': names need an image store to look them up`);
    return this.images.resolveUser(image, spec);
  }

  /** The cgroup files a context's config asks for at start, in the order the kernel accepts them. */
  cgroupPlan(config: ContextConfig, cg: ContextCgroup): CgroupWrite[] {
    // A fresh cgroup has no I/O rules to clear: the disk is looked up only when there are rules to write.
    const io = config.limits.io ?? {};
    const anyIo = Object.values(io).some((v) => v !== undefined);
    // The group is new (cleanupLeftovers removed any of this name), so its CPU bandwidth is already unlimited.
    const writes = freshWrites(
      anyIo ? this.limitWrites(config.name, config.limits) : cgroupWrites(config.limits, limitsVersion(this.cgroupHost), []),
    );
    // The v1 devices cgroup is a second wall behind the dropped MKNOD capability (written at start only:
    // rewriting it live would deny every device for a moment). Usually the shared group holds the
    // rules (written when it is made); a context has its own only where devices shares a hierarchy.
    return cg.owns('devices') && this.cgroupHost.v1.has('devices') ? [...DEVICE_RULES, ...writes] : writes;
  }

  /**
   * A context's memory in bytes: its memory cgroup's usage where it has one,
   * else what its processes hold (the sum of their proportional set sizes:
   * shared pages are split among their users, as the cgroup would not).
   */
  memoryOf(name: string): number {
    const cg = this.cgroupOf(name);
    if (cg.owns('memory')) {
      const v = Number(cg.read('memory', this.cgroupHost.layout === 'v2' ? 'memory.current' : 'memory.usage_in_bytes'));
      return Number.isFinite(v) ? v : 0;
    }
    return cg.pids().reduce((sum, pid) => sum + (processMemory(pid)?.pss ?? 0), 0);
  }

  /** The cgroup files a context's limits become (at start, and live by `paene limit`); I/O rules name the disk of its private layer. */
  limitWrites(name: string, limits: ResourceLimits): CgroupWrite[] {
    return cgroupWrites(limits, limitsVersion(this.cgroupHost), blockDevicesFor(this.layout.upperDir(name)));
  }

  /** Makes the private layer ready: mounts the context's filesystem if it has a disk limit. */
  private prepareLayer(config: ContextConfig): void {
    const name = config.name;
    if (config.disk) mountDiskImage(this.layout.diskImage(name), this.layout.layerDir(name));
    for (const d of [this.layout.upperDir(name), this.layout.workDir(name), this.layout.rootfsDir(name)])
      fs.mkdirSync(d, { recursive: true });
  }

  /** Removes what a crashed context left: its processes, cgroups, layer mount and stale state. */
  private async cleanupLeftovers(name: string, known?: ContextConfig): Promise<void> {
    await stopIoThrottle(this, name); // stop the I/O throttler (by pid) before the cgroups go
    const cg = this.cgroupOf(name);
    const hasCgroups = cg.exists();
    if (hasCgroups) await cg.killAll();
    // The host side of its network, once no process of it is left (a broken config has none to undo).
    let config = known;
    try {
      config ??= this.store.readConfig(name);
    } catch {
      config = undefined;
    }
    // The cgroups go first: BPF programs go with their cgroup, so the network has less to undo.
    if (hasCgroups) await cg.remove();
    if (config) this.network.afterStop(config, cg);
    removeScratch(this.layout, name);
    // Only after every process is gone: a disk-limited layer is unmounted (a plain one is a no-op).
    unmountDiskImage(this.layout.layerDir(name));
    this.store.clearState(name);
  }

  // -------------------------------------------------------------- exec

  /** What the native front door needs to enter this running context without Node (kernel/helper.ts ExecPlan). */
  private writeExecPlan(config: ContextConfig, initPid: number, starttime: number): void {
    // An imported image's WorkingDir or User is resolved by the Node path: no plan, so the front door hands over.
    const image = this.images.defaultsOf?.(config.image)?.run;
    if (image && (image.workingDir !== undefined || (image.user ?? '') !== '')) {
      fs.rmSync(this.layout.execPlanFile(config.name), { force: true });
      return;
    }
    const plan = execPlanBytes({
      initPid,
      starttime,
      ...this.execWalls(config),
      capsRoot: contextCaps(config),
      capsUser: 0n,
      env: guestEnv(config, image ? planProcess(image, { argv: ['-'] }, config.image).env : {}),
      term: 'xterm',
    });
    writeFileAtomic(this.layout.execPlanFile(config.name), plan, 0o600, false);
  }

  private execRequest(name: string, argv: string[], opts: ExecOptions & { user?: { uid: number; gid: number }; startedFd?: number }) {
    const config = this.store.readConfig(name);
    const live = this.store.live(name);
    if (!live) throw new PaeneError('wrong-state', `context '${name}' is not running; start it with 'paene start ${name}'`);
    // The image's config is the default: no command runs its Entrypoint + Cmd, with its Env, WorkingDir, User.
    const defaults = this.images.defaultsOf?.(config.image);
    const plan = planProcess(defaults?.run, { argv, env: opts.env, cwd: opts.cwd }, config.image);
    const user = opts.user ?? defaults?.user?.();
    return execArgs({
      initPid: live.pid,
      ...this.execWalls(config, opts.cgroupLeaf),
      capsMask: user && user.uid !== 0 ? 0n : contextCaps(config), // as the exec plan's caps-user / caps-root
      env: guestEnv(config, { ...(opts.tty ? { TERM: process.env.TERM ?? 'xterm' } : {}), ...plan.env }),
      cwd: plan.cwd,
      user,
      tty: opts.tty,
      startedFd: opts.startedFd,
      argv: plan.argv,
    });
  }

  /** The walls of every process entering the context, for an exec and for the exec plan alike. */
  private execWalls(config: ContextConfig, leaf?: string) {
    const cg = this.cgroupOf(config.name);
    const unified = cg.unifiedDir && path.join(cg.unifiedDir, 'cgroup.procs');
    return {
      cgroupProcs: cg.procsFiles().map((f) => (leaf && f === unified ? path.join(cg.unifiedDir as string, leaf, 'cgroup.procs') : f)),
      seccomp: this.policy.seccomp(config),
      ...this.network.execLaunch(config),
      sched: launchSched(config),
    };
  }

  /**
   * `exec -u NAME[:GROUP]`: the names looked up in the guest's own /etc/passwd
   * and /etc/group, its private layer over its image (a user it added is
   * found), never through a symlink the guest made.
   */
  private async execUser(name: string, opts: ExecOptions): Promise<ExecOptions & { user?: { uid: number; gid: number } }> {
    const spec = opts.user;
    if (typeof spec !== 'string') return { ...opts, user: spec };
    const num = /^(\d+)(?::(\d+))?$/.exec(spec);
    if (num) return { ...opts, user: { uid: Number(num[1]), gid: Number(num[2] ?? num[1]) } };
    const config = this.store.readConfig(name);
    const lower = await this.images.rootfsOf(config.image);
    const read = (rel: string) => guestFile(this.layout.upperDir(name), lower, rel);
    try {
      return { ...opts, user: resolveUser(spec, read('etc/passwd'), read('etc/group')) };
    } catch (e) {
      if (e instanceof PaeneError) throw new PaeneError(e.code, e.message.replace(/the image's (\/etc\/\w+)/, `$1 of context '${name}'`));
      throw e;
    }
  }

  /** Runs a command in the context with this process's stdio; resolves to its exit code. */
  async exec(name: string, argv: string[], opts: ExecOptions = {}): Promise<number> {
    requireRoot('exec');
    const args = this.execRequest(name, argv, await this.execUser(name, opts));
    const child = spawn(helperPath(), args, { stdio: 'inherit', env: {} });
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? osSignal(signal) : 0)));
    });
  }

  /** Runs a command and collects its output (for tests, checks and benchmarks). */
  async execCapture(
    name: string,
    argv: string[],
    opts: ExecOptions & { input?: string | Buffer; timeoutMs?: number } = {},
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    requireRoot('exec');
    const args = this.execRequest(name, argv, await this.execUser(name, opts));
    const child = spawn(helperPath(), args, { stdio: ['pipe', 'pipe', 'pipe'], env: {} });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code: code ?? 128 + (signal ? osSignal(signal) : 0), stdout, stderr });
      });
    });
  }

  /**
   * Starts a command in the context with the given stdio (a descriptor or
   * another child's pipe passes straight through: `paene cp` streams a tar
   * between a host process and one in the context with no copy in Node).
   */
  async execChild(name: string, argv: string[], stdio: StdioOptions, opts: Omit<ExecOptions, 'tty'> = {}): Promise<ChildProcess> {
    requireRoot('exec');
    const args = this.execRequest(name, argv, { ...(await this.execUser(name, opts)), tty: false });
    return spawn(helperPath(), args, { stdio, env: {} });
  }

  /**
   * `exec --detach`: starts the command in the context and returns once it
   * runs, with its pid on the host and inside. Its output goes nowhere; the
   * helper that started it stays its parent (in the context's cgroups, as
   * every exec's) and goes with it. A command that is not there is an error.
   */
  async execDetached(name: string, argv: string[], opts: Omit<ExecOptions, 'tty'> = {}): Promise<{ pid: number; innerPid: number }> {
    requireRoot('exec');
    // The helper answers on its fd 3 once the command's execve has succeeded ('ok PID') or failed ('err CODE ...'),
    // from a close-on-exec pipe of its child: no guess from how long it has not exited.
    const args = this.execRequest(name, argv, { ...(await this.execUser(name, opts)), tty: false, startedFd: 3 });
    const helper = spawn(helperPath(), args, { stdio: ['ignore', 'ignore', 'ignore', 'pipe'], env: {}, detached: true });
    const exited = new Promise<string>((resolve) => {
      helper.on('error', (e) => resolve(e.message));
      helper.on('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
    });
    const answer = await new Promise<string>((resolve) => {
      const fd3 = helper.stdio[3] as NodeJS.ReadableStream | null;
      if (!fd3) return resolve('');
      let out = '';
      fd3.setEncoding('utf8');
      fd3.on('data', (d: string) => (out += d));
      fd3.on('error', () => resolve(out));
      fd3.on('end', () => resolve(out));
      helper.on('error', () => resolve(out));
    });
    helper.unref();
    const line = answer.trim();
    const r = parseReply(HELPER_ERRORS, line);
    if (!r.ok) {
      if (r.code === 'not-found') throw new PaeneError('not-found', `${argv[0] ?? 'the command'}: not found in context '${name}'`);
      const why = line === '' ? `the helper gave no answer (${await exited})` : r.message;
      throw new PaeneError('internal', `the command did not start in context '${name}': ${why}`);
    }
    const pid = Number(r.value);
    if (!Number.isInteger(pid) || pid <= 0)
      throw new PaeneError('internal', `the helper's answer for a detached exec is not a pid: '${line}'`);
    let innerPid = pid;
    try {
      const ns = /^NSpid:\s+(.*)$/m
        .exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
        ?.trim()
        .split(/\s+/);
      if (ns && ns.length > 0) innerPid = Number(ns[ns.length - 1]);
    } catch {
      /* it has ended already */
    }
    return { pid, innerPid };
  }

  /**
   * Sets per-context sysctls of a running context from the host (its uts
   * and ipc namespaces only: kernel.hostname, kernel.shm*, kernel.msg*,
   * kernel.sem). The guest's own /proc/sys stays read-only.
   */
  setSysctls(name: string, sysctls: Record<string, string>): void {
    requireRoot('changing a running context');
    const live = this.store.live(name);
    if (!live) throw new PaeneError('wrong-state', `context '${name}' is not running`);
    const host = Object.keys(sysctls).filter((k) => !isPerContextSysctl(k));
    if (host.length > 0)
      throw new PaeneError('invalid-argument', `${host.join(', ')}: not a per-context (uts/ipc) sysctl; it would change the host`);
    const entries = Object.entries(sysctls).map(([k, v]) => `${k}=${v}`);
    if (entries.length === 0) return;
    const r = spawnSync(helperPath(), ['sysctl', '--pid', String(live.pid), ...entries], { encoding: 'utf8', env: {} });
    if (r.status !== 0) throw new PaeneError('internal', `cannot set ${entries.join(' ')} in '${name}': ${r.stderr.trim()}`);
  }

  // -------------------------------------------------------- stop, destroy

  /** Stops the context: SIGTERM to its init, then after `timeoutMs` SIGKILL to all that is left. */
  async stop(name: string, opts: { timeoutMs?: number; byUser?: boolean } = {}): Promise<{ wasRunning: boolean }> {
    requireRoot('stopping a context');
    return this.withContextLock(name, async () => {
      const r = await this.stopLocked(name, opts.timeoutMs ?? 10_000);
      // A user's stop (not the host's shutdown): `--restart unless-stopped` stays down at the next autostart.
      if (opts.byUser !== false) fs.writeFileSync(this.layout.stoppedMark(name), `${new Date().toISOString()}\n`);
      return r;
    });
  }

  /** Stops and starts a context again (its main process, or guest init, starts afresh). */
  async restart(name: string, opts: { timeoutMs?: number } = {}): Promise<ContextStatus> {
    await this.stop(name, opts);
    return this.start(name);
  }

  /**
   * Sends a signal to a running context's main process (its restart policy
   * then applies); to its init when the guest's init is pid 1.
   */
  kill(name: string, signal: NodeJS.Signals | number): { pid: number } {
    requireRoot('signalling a context');
    const config = this.store.readConfig(name);
    const live = this.store.live(name);
    if (!live) throw new PaeneError('wrong-state', `context '${name}' is not running`);
    let target = live.pid;
    if (config.init?.kind !== 'guest') {
      const st = readMainState(this.layout.logDir(name));
      if (!this.mainArgv(config))
        throw new PaeneError(
          'wrong-state',
          `context '${name}' has no main process (give it one with create --cmd); 'paene stop ${name}' ends it`,
        );
      if (st?.state !== 'running' || !st.pid)
        throw new PaeneError('wrong-state', `the main process of '${name}' is not running (${st ? st.state : 'not started'})`);
      const host = this.cgroupOf(name)
        .pids()
        .find((p) => innerPid(p) === st.pid && readStat(p)?.ppid === live.pid);
      if (host === undefined) throw new PaeneError('wrong-state', `the main process of '${name}' has just ended`);
      target = host;
    }
    try {
      process.kill(target, signal);
    } catch (e) {
      throw new PaeneError('invalid-argument', `cannot send ${String(signal)} to '${name}': ${(e as Error).message}`);
    }
    return { pid: target };
  }

  private async stopLocked(name: string, timeoutMs: number): Promise<{ wasRunning: boolean }> {
    this.store.readConfig(name); // unknown context -> clear error
    const live = this.store.live(name);
    if (live) await unguardForks(this, live.pid); // 1024 processes held to a few % of a CPU would take seconds to die
    if (live && timeoutMs > 0) {
      await stopIoThrottle(this, name); // a context held frozen by its throttler could not receive SIGTERM
      // paene's init passes SIGTERM on; a guest's init is asked the way it expects (model/service.ts).
      let config: ContextConfig | undefined;
      try {
        config = this.store.readConfig(name);
      } catch {
        config = undefined;
      }
      const flavor = config?.init?.kind === 'guest' ? config.init.flavor : undefined;
      try {
        process.kill(live.pid, flavor ? GUEST_INIT_STOP[flavor] : 'SIGTERM');
      } catch {
        /* already gone */
      }
      const deadline = Date.now() + timeoutMs;
      while (isAlive(live.pid, live.starttime) && Date.now() < deadline) await sleep(10);
    }
    await this.cleanupLeftovers(name);
    removeParentIfEmpty(this.cgroupHost, this.layout.cgroupParent);
    return { wasRunning: live !== undefined };
  }

  /** Stops (if running) and removes everything of the context: cgroups, private layer, config. */
  async destroy(name: string, opts: { force?: boolean; timeoutMs?: number } = {}): Promise<void> {
    requireRoot('destroying a context');
    validateName(name);
    await this.withContextLock(name, async () => {
      if (!fs.existsSync(this.layout.contextDir(name))) {
        this.store.readConfig(name); // throws not-found with the known names
      }
      if (opts.force) {
        // Whatever state the config is in, kill and remove.
        await this.cleanupLeftovers(name);
        removeParentIfEmpty(this.cgroupHost, this.layout.cgroupParent);
      } else {
        await this.stopLocked(name, opts.timeoutMs ?? 10_000);
      }
      let xid: number | undefined;
      let addresses: string[] | undefined;
      try {
        ({
          xid,
          net: { addresses },
        } = this.store.readConfig(name));
      } catch {
        xid = undefined; // a broken config: its claims are found by name below
      }
      // Rename first, so a crash mid-removal never leaves a half context that looks whole; under the
      // create lock with the xid's release, so a create never sees the name gone and the xid still held.
      const doomed = path.join(this.layout.contextsDir, `.${name}.destroying.${process.pid}`);
      await withLock(this.lockFile('.create'), { what: 'the context list' }, async () => {
        fs.renameSync(this.layout.contextDir(name), doomed);
        const held = xid ?? this.xids.findByName(name);
        if (held !== undefined) this.xids.release(name, held);
        for (const a of addresses ?? this.addrs.findByName(name)) this.addrs.release(name, a);
      });
      // Not rmSync: a destroy of many contexts overlaps their removals (the thread pool) instead of queueing them.
      await fs.promises.rm(doomed, { recursive: true, force: true });
      // The last context gone: the root's scratch tmpfs goes too (a start mounts it again), and its host-wide network claims.
      if (!this.store.any()) {
        await releaseScratch(this.layout, this.scratchLock);
        this.network.releaseHostClaims();
      }
    });
  }

  // ----------------------------------------------------------------- views

  status(name: string): ContextStatus {
    return this.statusOf(this.store.readConfig(name));
  }

  private statusOf(config: ContextConfig): ContextStatus {
    const name = config.name;
    const live = this.store.live(name);
    const cg = this.cgroupOf(name);
    return {
      name,
      xid: config.xid,
      image: config.image,
      hostname: config.hostname,
      state: live ? 'running' : 'stopped',
      pid: live?.pid,
      processes: live ? cg.pids().length : 0,
      started: live?.started,
      created: config.created,
      cgroup: `${this.layout.cgroupParent}/${name}`,
      net: config.net,
      netGaps: netGaps(config.net),
      ...this.mainStatus(config, live !== undefined),
      ...(config.mounts?.length ? { mounts: config.mounts } : {}),
    };
  }

  /** The main process's command and state (a stopped context's last run; one that was running when it stopped: stopped). */
  private mainStatus(config: ContextConfig, running: boolean): Pick<ContextStatus, 'main'> {
    let argv: string[] | undefined;
    try {
      argv = this.mainArgv(config); // a view: no user lookup in the image's files for every context listed
    } catch {
      argv = undefined; // an image gone: start says why
    }
    if (!argv) return {};
    const restart = config.restart ?? DEFAULT_RESTART;
    const st = readMainState(this.layout.logDir(config.name));
    const shown =
      st && !running && (st.state === 'running' || st.state === 'restarting') ? { ...st, state: 'stopped' as const, pid: undefined } : st;
    return {
      main: {
        argv,
        restart: restart.maxRestarts === undefined ? restart.mode : `${restart.mode}:${restart.maxRestarts}`,
        ...(shown ?? {}),
      },
    };
  }

  list(): ContextStatus[] {
    return this.store.readAllConfigs().map((c) => this.statusOf(c));
  }

  config(name: string): ContextConfig {
    return this.store.readConfig(name);
  }

  /** The context's processes, with the pids they have inside it. */
  ps(name: string): ProcessInfo[] {
    const config = this.store.readConfig(name);
    if (!this.store.live(name)) throw new PaeneError('wrong-state', `context '${name}' is not running`);
    return this.cgroupOf(name)
      .pids()
      .map((pid) => processInfo(pid, config.name, config.xid))
      .filter((p): p is ProcessInfo => p !== undefined)
      .sort((a, b) => a.innerPid - b.innerPid);
  }

  /** vserver's spectator view: every process on the host, with the context it belongs to (host = 0). */
  psAll(): ProcessInfo[] {
    const xids = new Map<string, number>();
    const pidsOf = new Map<number, string>();
    for (const n of this.store.names()) {
      try {
        xids.set(n, this.store.readConfig(n).xid);
        if (this.store.live(n)) for (const pid of this.cgroupOf(n).pids()) pidsOf.set(pid, n);
      } catch {
        /* a broken config is listed by `list`, not here */
      }
    }
    const out: ProcessInfo[] = [];
    for (const pid of allPids()) {
      const ctx = pidsOf.get(pid) ?? '';
      const info = processInfo(pid, ctx, ctx ? (xids.get(ctx) ?? 0) : 0);
      if (info) out.push(info);
    }
    return out;
  }

  /** Asks the monitor to exit once no context of this root runs (tests, benchmarks). */
  async shutdownMonitor(): Promise<void> {
    await this.monitor.quit();
  }
}

/**
 * Guest root's capabilities: its profile's; with the guest's own init also
 * SYS_BOOT, whose reboot(2) in a context (its own pid namespace) ends only
 * that namespace (the kernel's reboot_pid_ns), as an init's halt expects.
 */
export function contextCaps(config: ContextConfig): bigint {
  const mask = capMask(config.caps);
  return config.init?.kind === 'guest' ? mask | (1n << 22n) /* CAP_SYS_BOOT */ : mask;
}

/** The scheduling class a start or exec sets: only where the latency class changes the kernel's default. */
function launchSched(config: ContextConfig) {
  const l = config.limits.cpuLatency;
  return l === 'low' || l === 'batch' ? schedOf(l) : undefined;
}

function processInfo(pid: number, context: string, xid: number): ProcessInfo | undefined {
  const st = readStat(pid);
  if (!st) return undefined;
  const argv = cmdline(pid);
  return {
    context,
    xid,
    pid,
    innerPid: context ? (innerPid(pid) ?? pid) : pid,
    ppid: st.ppid,
    state: st.state,
    command: argv.length ? argv.join(' ') : `[${st.comm}]`,
  };
}

function osSignal(name: NodeJS.Signals): number {
  const n = (os.constants.signals as Record<string, number>)[name];
  return n ?? 0;
}

/** A start refused because a cgroup it was to join was gone (the helper's cgroup-gone). */
function joinFoundNoGroup(e: unknown): boolean {
  return e instanceof HelperRefusal && e.helperCode === 'cgroup-gone';
}
