// paene-runc's runtime: OCI containers from bundles, one directory per
// container under the state root (default /run/paene-runc), carried out by
// paene-oci (src/native/paene-oci.c) with the plan from oci/spec.ts and
// the cgroups through paene's own adapter (cgroups/cgroups.ts).
//
// ROOT/ID/state.json   the container: pid + start time of its init, bundle,
//                      cgroup path, config digest, whether start was called
// ROOT/ID/exec.fifo    exists between create and start; start writes one byte
// ROOT/ID/plan         the plan file paene-oci read (kept for debugging)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PaeneError, errnoOf } from '../model/errors.js';
import {
  NS_FILE,
  createTokens,
  encodeTokens,
  processTokens,
  translateConfig,
  translateProcess,
  MS,
  type OciConfig,
  type OciHook,
  type OciPlan,
  type OciProcess,
  type OciResources,
  type PlanMount,
} from './spec.js';
import { ioThrottleWrites, resourceWrites } from './resources.js';
import type { Entry } from '../proto/tokens.js';
import { OCI_JSON_MAX_BYTES, parseOciJson } from './json.js';
import type { BlockDevice, CgroupVersion } from '../cgroups/map.js';
import { ContextCgroup, detectCgroupHost, limitsVersion, parseMountinfo, type CgroupHost } from '../cgroups/cgroups.js';
import { attachDeviceProgram } from '../kernel/bpf.js';
import { blockDevicesFor } from '../runtime/iothrottle.js';
import { writeFileAtomic, writeJsonAtomic } from '../kernel/atomic.js';
import { isAlive, readStat } from '../kernel/procfs.js';
import { nativePath } from '../kernel/package.js';

export const OCI_VERSION = '1.2.0';
export const DEFAULT_OCI_ROOT = '/run/paene-runc';
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;

export type OciStatus = 'creating' | 'created' | 'running' | 'stopped' | 'paused';

export interface OciRecord {
  id: string;
  bundle: string;
  rootfs: string;
  pid: number;
  starttime: number;
  created: string;
  cgroupPath: string;
  started: boolean;
  annotations: Record<string, string>;
  /** the container's namespaces: exec joins the same ones */
  namespaces: string[];
  /** the config's process: `exec ID CMD` starts from it */
  process: OciProcess;
  /** the compiled seccomp filter (hex): exec'd processes get it too */
  seccomp?: string;
  hooks: OciPlan['hooks'];
  owner: string;
  /**
   * no mount namespace of its own: its mounts live in the host's, all below one bind of the rootfs;
   * the ids of the mounts already at the rootfs before, so delete detaches only ours
   */
  hostMounts?: number[];
}

/** Ids of the mounts whose mount point is exactly `dir` (from /proc/self/mountinfo). */
function mountIdsAt(dir: string): number[] {
  const esc = dir.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === esc)
    .map((f) => Number(f[0]));
}

/** Detaches the container's root bind (and every mount below it) from the host's namespace. */
function detachHostMounts(rootfs: string, before: number[]): void {
  for (let i = 0; i < 8 && mountIdsAt(rootfs).some((id) => !before.includes(id)); i++) {
    const r = spawnSync('umount', ['-l', rootfs], { encoding: 'utf8' });
    if (r.status !== 0) throw new PaeneError('internal', `cannot detach the container's root ${rootfs}: ${r.stderr.trim()}`);
  }
}

export interface OciState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

export function validateId(id: string | undefined): string {
  if (!id) throw new PaeneError('invalid-argument', 'container id cannot be empty');
  if (!ID_RE.test(id)) throw new PaeneError('invalid-argument', `invalid container id '${id}' (letters, digits, _ . + -)`);
  return id;
}

const notExist = (id: string) => new PaeneError('not-found', `container "${id}" does not exist`);

function cgroupOf(host: CgroupHost, cgPath: string): ContextCgroup {
  return new ContextCgroup(host, path.posix.dirname(cgPath), path.posix.basename(cgPath));
}

/** The v1 cpuset hierarchy (not among paene's own controllers): copy cpus/mems down, v1 starts them empty. */
function cpusetDir(cgPath: string): string | undefined {
  const base = '/sys/fs/cgroup/cpuset';
  return fs.existsSync(path.join(base, 'cpuset.cpus')) ? path.join(base, cgPath) : undefined;
}

function prepareCpuset(cgPath: string, want?: { cpus?: string; mems?: string }): string | undefined {
  const dir = cpusetDir(cgPath);
  if (!dir) {
    if (want) throw new PaeneError('unsupported', 'linux.resources.cpu.cpus/mems: no cgroup v1 cpuset hierarchy on this host');
    return undefined;
  }
  const base = '/sys/fs/cgroup/cpuset';
  let cur = base;
  for (const part of cgPath.split('/').filter(Boolean)) {
    const next = path.join(cur, part);
    fs.mkdirSync(next, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (fs.readFileSync(path.join(next, f), 'utf8').trim() === '')
        fs.writeFileSync(path.join(next, f), fs.readFileSync(path.join(cur, f), 'utf8').trim());
    }
    cur = next;
  }
  try {
    if (want?.cpus) fs.writeFileSync(path.join(dir, 'cpuset.cpus'), want.cpus);
    if (want?.mems) fs.writeFileSync(path.join(dir, 'cpuset.mems'), want.mems);
  } catch (e) {
    throw new PaeneError('invalid-argument', `linux.resources.cpu.cpus/mems: ${(e as Error).message}`);
  }
  return dir;
}

/**
 * v2: cpuset is a controller of the container's own directory, enabled down
 * the tree only for a container that asks for it (paene's contexts do not use it).
 */
function prepareCpusetV2(cg: ContextCgroup, want: { cpus?: string; mems?: string }): void {
  const mount = cg.host.unified?.mount;
  const dir = cg.unifiedDir;
  if (!mount || !dir) throw new PaeneError('unsupported', 'linux.resources.cpu.cpus/mems: no cgroup v2 hierarchy on this host');
  const avail = fs.readFileSync(path.join(mount, 'cgroup.controllers'), 'utf8').split(/\s+/);
  if (!avail.includes('cpuset'))
    throw new PaeneError('unsupported', 'linux.resources.cpu.cpus/mems: the cgroup v2 cpuset controller is not available on this host');
  const parts = path.relative(mount, dir).split('/');
  for (let i = 0; i < parts.length; i++) {
    const ctl = path.join(mount, ...parts.slice(0, i), 'cgroup.subtree_control');
    if (!fs.readFileSync(ctl, 'utf8').split(/\s+/).includes('cpuset')) fs.writeFileSync(ctl, '+cpuset');
  }
  try {
    if (want.cpus) fs.writeFileSync(path.join(dir, 'cpuset.cpus'), want.cpus);
    if (want.mems) fs.writeFileSync(path.join(dir, 'cpuset.mems'), want.mems);
  } catch (e) {
    throw new PaeneError('invalid-argument', `linux.resources.cpu.cpus/mems: ${(e as Error).message}`);
  }
}

/**
 * The block devices the container's root writes reach: the root's own, or for
 * an overlay root (containerd's snapshots) its upper directory's.
 */
function devicesBehindRoot(rootfs: string): BlockDevice[] {
  const own = blockDevicesFor(rootfs);
  if (own.length > 0) return own;
  // the last mount there is the one in effect
  const m = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((e) => e.mountPoint === rootfs && e.fsType === 'overlay')
    .pop();
  const upper = m?.superOptions.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
  return upper ? blockDevicesFor(upper) : [];
}

function readProcsFile(dir: string): number[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function rmdirRetry(dir: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return;
      if (errnoOf(e) !== 'EBUSY') throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** Every v1 hierarchy mount, by its directory (for the cgroup mount inside the container). */
function v1Hierarchies(): { dir: string; name: string }[] {
  const out: { dir: string; name: string }[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const mp = pre.split(' ')[4];
    const fstype = post.split(' ')[0];
    if ((fstype === 'cgroup' || fstype === 'cgroup2') && mp.startsWith('/sys/fs/cgroup/')) out.push({ dir: mp, name: path.basename(mp) });
  }
  return out;
}

/**
 * The container's directories in the mounted hierarchies paene's own cgroup
 * code does not manage (name=systemd, net_cls, perf_event, a v1 freezer left
 * for the unified one …), so it is in a cgroup of its own in every one, as
 * with runc: `made` creates them (create), otherwise only existing ones count
 * (exec). `taken`: cgroup.procs files already joined.
 */
function otherHierarchies(cgPath: string, taken: string[], made = true): string[] {
  const out: string[] = [];
  for (const h of v1Hierarchies()) {
    if (h.name === 'cpuset') continue; // its cpus and mems are filled in first (prepareCpuset)
    const dir = path.join(h.dir, cgPath);
    if (taken.includes(path.join(dir, 'cgroup.procs'))) continue;
    if (made) fs.mkdirSync(dir, { recursive: true });
    else if (!fs.existsSync(dir)) continue;
    out.push(dir);
  }
  return out;
}

/** Whether the host runs AppArmor (runc's test). */
function appArmorEnabled(): boolean {
  try {
    return (
      fs.existsSync('/sys/kernel/security/apparmor') && fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').startsWith('Y')
    );
  } catch {
    return false;
  }
}

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  noPivot?: boolean;
  /** `run`: keep the container's process as our child's child and wait for it */
  foreground?: boolean;
  /** the caller's descriptors 3 … 3+N-1 that the process keeps (LISTEN_FDS + --preserve-fds) */
  preserveFds?: number;
  /** the first N of them are socket-activation descriptors: the process is told (LISTEN_FDS, LISTEN_PID=1) */
  listenFds?: number;
}

export interface HookEnv {
  /** where hook failures and the like are logged */
  warn(msg: string): void;
}

/** What running paene-oci gave: the pid it reported, and (asked to wait) its exit status. */
export interface NativeRun {
  pid: number;
  exit?: Promise<number>;
}

/**
 * Runs paene-oci CMD PLAN with the caller's stdio (the container's), the
 * caller's descriptors 3 … 3+preserve-1, a sync pipe after them; resolves once
 * the container is ready, or rejects with paene-oci's error. Here (runNative)
 * or, for a call that came through paene-runc's native front, in the front.
 */
export type NativeRunner = (cmd: string, planFile: string, wait: boolean, input?: string, preserve?: number) => Promise<NativeRun>;

export class OciRuntime {
  private readonly host: CgroupHost;
  /** the files resources become: v1 hierarchies (also on a hybrid host), or a pure v2 host's */
  private readonly version: CgroupVersion;

  constructor(
    readonly root: string,
    private readonly log: HookEnv,
    private readonly runNative: NativeRunner = runNativeHere,
  ) {
    this.host = detectCgroupHost();
    this.version = limitsVersion(this.host);
  }

  private dir(id: string): string {
    return path.join(this.root, id);
  }

  load(id: string): OciRecord {
    validateId(id);
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir(id), 'state.json'), 'utf8')) as OciRecord;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') throw notExist(id);
      throw new PaeneError('internal', `cannot read the state of "${id}": ${(e as Error).message}`);
    }
  }

  status(r: OciRecord): OciStatus {
    if (r.pid === 0) return 'creating';
    const st = readStat(r.pid);
    if (!st || st.starttime !== r.starttime || st.state === 'Z' || st.state === 'X') return 'stopped';
    if (fs.existsSync(path.join(this.dir(r.id), 'exec.fifo'))) return 'created';
    // paused: frozen through cgroup v2 (cgroup.freeze) or the v1 freezer, whichever ContextCgroup used
    const cg = cgroupOf(this.host, r.cgroupPath);
    const read = (f: string | undefined) => {
      try {
        return f ? fs.readFileSync(f, 'utf8') : '';
      } catch {
        return '';
      }
    };
    if (/^frozen 1$/m.test(read(cg.unifiedDir && path.join(cg.unifiedDir, 'cgroup.events')))) return 'paused';
    const v1 = this.host.v1.has('freezer') ? cg.dir('freezer') : undefined;
    if (read(v1 && path.join(v1, 'freezer.state')).trim() === 'FROZEN') return 'paused';
    return 'running';
  }

  state(id: string): OciState {
    const r = this.load(id);
    const status = this.status(r);
    return {
      ociVersion: OCI_VERSION,
      id: r.id,
      status,
      pid: status === 'stopped' ? 0 : r.pid,
      bundle: r.bundle,
      annotations: r.annotations,
    };
  }

  list(): OciRecord[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.root);
    } catch {
      return [];
    }
    const out: OciRecord[] = [];
    for (const n of names) {
      try {
        out.push(this.load(n));
      } catch {
        /* a half-made or foreign directory */
      }
    }
    return out;
  }

  async create(id: string, o: CreateOptions): Promise<{ pid: number; exit?: Promise<number>; start?: () => Promise<void> }> {
    validateId(id);
    const bundle = path.resolve(o.bundle);
    const cfgFile = path.join(bundle, 'config.json');
    let text: string;
    try {
      if (fs.statSync(cfgFile).size > OCI_JSON_MAX_BYTES) throw new Error(`over the limit of ${OCI_JSON_MAX_BYTES} bytes`);
      text = fs.readFileSync(cfgFile, 'utf8');
    } catch (e) {
      throw new PaeneError('invalid-argument', `cannot read ${cfgFile}: ${(e as Error).message}`);
    }
    const cfg = parseOciJson(text, cfgFile) as OciConfig;
    const plan = translateConfig(cfg, { id, bundle, cgroup: this.version, apparmor: appArmorEnabled() });
    if (!fs.existsSync(plan.rootfs)) throw new PaeneError('invalid-argument', `root.path: ${plan.rootfs} does not exist`);
    if (o.listenFds) plan.process.env = [...plan.process.env, `LISTEN_FDS=${o.listenFds}`, 'LISTEN_PID=1'];
    // paene-runc does not relay a pty itself (runc run does): the caller takes the master from the socket
    if (plan.process.terminal && !o.consoleSocket)
      throw new PaeneError('invalid-argument', 'process.terminal is true: --console-socket is required');
    fs.mkdirSync(this.root, { recursive: true, mode: 0o700 });
    const dir = this.dir(id);
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') throw new PaeneError('exists', `container with id "${id}" already exists`);
      throw e;
    }
    const record: OciRecord = {
      id,
      bundle,
      rootfs: plan.rootfs,
      pid: 0,
      starttime: 0,
      created: new Date().toISOString(),
      cgroupPath: plan.cgroup.path,
      started: false,
      annotations: plan.annotations,
      namespaces: plan.namespaces.map((n) => n.type),
      process: cfg.process as OciProcess,
      seccomp: plan.process.seccomp?.toString('hex'),
      hooks: plan.hooks,
      owner: '',
      hostMounts: plan.namespaces.some((n) => n.type === 'mount') ? undefined : mountIdsAt(plan.rootfs),
    };
    const cg = cgroupOf(this.host, plan.cgroup.path);
    try {
      writeJsonAtomic(path.join(dir, 'state.json'), record);
      cg.create();
      const cpuset = this.applyResources(cg, plan.cgroup);
      if (plan.paene.io) {
        const devices = devicesBehindRoot(plan.rootfs);
        if (devices.length === 0)
          throw new PaeneError(
            'invalid-argument',
            `annotations.paene.io/io-write-bps: no block device behind root.path ${plan.rootfs} (a tmpfs or memory-backed root has no disk to throttle)`,
          );
        cg.apply(ioThrottleWrites(devices, plan.paene.io));
      }
      if (plan.cgroup.devices) attachDeviceProgram(cg.unifiedDir as string, plan.cgroup.devices);
      const procs = cg.procsFiles();
      if (cpuset) procs.push(path.join(cpuset, 'cgroup.procs'));
      procs.push(...otherHierarchies(plan.cgroup.path, procs).map((d) => path.join(d, 'cgroup.procs')));
      const fifo = path.join(dir, 'exec.fifo');
      const mk = spawnSync('mkfifo', ['-m', '0600', fifo]);
      if (mk.status !== 0) throw new PaeneError('internal', `mkfifo ${fifo}: ${mk.stderr}`);
      const binds = this.cgroupBinds(plan);
      const preserveFds = o.preserveFds ?? 0;
      const tokens = createTokens({
        plan,
        fifo,
        cgroupProcs: procs,
        cgroupBinds: binds,
        consoleSocket: o.consoleSocket,
        noPivot: o.noPivot,
        wait: o.foreground,
        preserveFds,
      });
      const planFile = path.join(dir, 'plan');
      writeFileAtomic(planFile, encodeTokens(tokens), 0o600);
      const run = await this.runNative('create', planFile, !!o.foreground, undefined, preserveFds);
      const st = readStat(run.pid);
      record.pid = run.pid;
      record.starttime = st?.starttime ?? 0;
      writeJsonAtomic(path.join(dir, 'state.json'), record);
      if (o.pidFile) writeFileAtomic(path.resolve(o.pidFile), String(run.pid));
      await this.runHooks(record, record.hooks.createRuntime, 'createRuntime', true);
      await this.runContainerHooks(record, record.hooks.createContainer ?? [], 'createContainer');
      return { pid: run.pid, exit: run.exit };
    } catch (e) {
      await this.cleanup(record, cg).catch(() => undefined);
      throw e;
    }
  }

  /**
   * The resource writes, unified files and cpuset of a plan or an update, on
   * the container's cgroup; returns the v1 cpuset directory to join, if any.
   */
  private applyResources(cg: ContextCgroup, r: Pick<OciPlan['cgroup'], 'path' | 'writes' | 'cpuset' | 'unified'>): string | undefined {
    cg.apply(r.writes);
    for (const [file, value] of r.unified) {
      try {
        fs.writeFileSync(path.join(cg.unifiedDir as string, file), value);
      } catch (e) {
        throw new PaeneError('invalid-argument', `linux.resources.unified.${file}: ${(e as Error).message}`);
      }
    }
    if (this.version === 'v2') {
      if (r.cpuset) prepareCpusetV2(cg, r.cpuset);
      return undefined;
    }
    return prepareCpuset(r.path, r.cpuset);
  }

  /**
   * cgroup mounts: v1 (and hybrid) a tmpfs, and in it each hierarchy's directory of this container;
   * pure v2 the container's one directory, as the cgroup2 root it sees. Read-only when the mount says.
   */
  private cgroupBinds(plan: OciPlan): PlanMount[] {
    const out: PlanMount[] = [];
    const flags = MS.BIND | MS.NOSUID | MS.NODEV | MS.NOEXEC;
    if (this.version === 'v2') {
      const dir = cgroupOf(this.host, plan.cgroup.path).unifiedDir as string;
      for (const m of plan.cgroupMounts)
        out.push({
          source: dir,
          destination: m.destination,
          type: 'bind',
          flags: flags | (m.readonly ? MS.RDONLY : 0),
          propagation: 0,
          data: '',
        });
      return out;
    }
    for (const m of plan.cgroupMounts) {
      out.push({
        source: 'tmpfs',
        destination: m.destination,
        type: 'tmpfs',
        flags: MS.NOSUID | MS.NODEV | MS.NOEXEC,
        propagation: 0,
        data: 'mode=755',
      });
      for (const h of v1Hierarchies()) {
        const src = path.join(h.dir, plan.cgroup.path);
        if (!fs.existsSync(src)) continue;
        const ro = m.readonly ? MS.RDONLY : 0;
        out.push({
          source: src,
          destination: path.posix.join(m.destination, h.name),
          type: 'bind',
          flags: flags | ro,
          propagation: 0,
          data: '',
        });
      }
    }
    return out;
  }

  async start(id: string): Promise<void> {
    const r = this.load(id);
    const s = this.status(r);
    if (s !== 'created')
      throw new PaeneError('wrong-state', s === 'stopped' ? 'container not running' : `cannot start a container that is ${s}`);
    try {
      await this.runContainerHooks(r, r.hooks.startContainer ?? [], 'startContainer');
    } catch (e) {
      // the spec: a failed startContainer hook stops the container; its process never runs
      this.kill(id, 9, true);
      throw e;
    }
    const fifo = path.join(this.dir(id), 'exec.fifo');
    let fd: number;
    try {
      fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      if (errnoOf(e) === 'ENXIO') throw new PaeneError('wrong-state', 'container not running');
      throw e;
    }
    try {
      fs.writeSync(fd, '0');
    } finally {
      fs.closeSync(fd);
    }
    fs.rmSync(fifo, { force: true });
    r.started = true;
    writeJsonAtomic(path.join(this.dir(id), 'state.json'), r);
    await this.runHooks(r, r.hooks.poststart, 'poststart', false);
  }

  kill(id: string, signal: number, all: boolean): void {
    const r = this.load(id);
    const s = this.status(r);
    if (s === 'stopped' && !all) throw new PaeneError('wrong-state', 'container not running');
    const pids = all ? this.pids(r) : [r.pid];
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch (e) {
        if (errnoOf(e) !== 'ESRCH') throw new PaeneError('internal', `kill ${pid}: ${(e as Error).message}`);
      }
    }
  }

  pids(r: OciRecord): number[] {
    const set = new Set<number>();
    for (const d of cgroupOf(this.host, r.cgroupPath).dirs()) for (const p of readProcsFile(d)) set.add(p);
    return [...set];
  }

  async delete(id: string, force: boolean): Promise<void> {
    const r = this.load(id);
    const s = this.status(r);
    if (s !== 'stopped' && s !== 'created' && !force)
      throw new PaeneError('wrong-state', `cannot delete container "${id}" that is not stopped: ${s}`);
    const cg = cgroupOf(this.host, r.cgroupPath);
    if (s === 'paused') cg.thaw();
    await this.cleanup(r, cg);
    await this.runHooks(r, r.hooks.poststop, 'poststop', false);
  }

  private async cleanup(r: OciRecord, cg: ContextCgroup): Promise<void> {
    if (r.pid && isAlive(r.pid, r.starttime)) {
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await cg.killAll();
    if (r.hostMounts) detachHostMounts(r.rootfs, r.hostMounts);
    await cg.remove();
    const cs = cpusetDir(r.cgroupPath);
    if (cs) await rmdirRetry(cs);
    for (const h of v1Hierarchies()) await rmdirRetry(path.join(h.dir, r.cgroupPath));
    // the parents paene-runc chose (a missing or relative cgroupsPath goes under /paene-runc), once empty;
    // parents of a path the caller gave are the caller's (runc leaves them too)
    const mounts = [
      ...new Set([...this.host.v1.values(), ...v1Hierarchies().map((h) => h.dir)]),
      ...(this.host.unified ? [this.host.unified.mount] : []),
    ];
    for (let p = path.posix.dirname(r.cgroupPath); p.startsWith('/paene-runc'); p = path.posix.dirname(p)) {
      for (const m of mounts) {
        try {
          fs.rmdirSync(path.join(m, p));
        } catch {
          /* not empty, or absent */
        }
      }
    }
    fs.rmSync(this.dir(r.id), { recursive: true, force: true });
  }

  async pause(id: string): Promise<void> {
    const r = this.load(id);
    if (this.status(r) !== 'running') throw new PaeneError('wrong-state', 'container not running');
    await cgroupOf(this.host, r.cgroupPath).freeze();
  }

  resume(id: string): void {
    const r = this.load(id);
    if (this.status(r) !== 'paused') throw new PaeneError('wrong-state', 'container not paused');
    cgroupOf(this.host, r.cgroupPath).thaw();
  }

  update(id: string, res: OciResources): void {
    const r = this.load(id);
    if (this.status(r) === 'stopped') throw new PaeneError('wrong-state', 'container not running');
    const cg = cgroupOf(this.host, r.cgroupPath);
    // v2 counts swap apart from memory: a new swap value alone needs the limit in effect
    const current = this.version === 'v2' && res.memory?.limit === undefined ? cg.read('memory', 'memory.max') : undefined;
    const memoryLimit = current === undefined ? undefined : current === 'max' ? -1 : Number(current);
    // v1: the limit in effect decides whether memsw or the limit goes first (memsw ≥ limit at every step)
    const v1Limit = this.version === 'v1' && res.memory?.limit ? cg.read('memory', 'memory.limit_in_bytes') : undefined;
    const currentMemoryLimit = v1Limit === undefined ? undefined : Number(v1Limit);
    const { writes, cpuset, unified } = resourceWrites(res, this.version, { memoryLimit, currentMemoryLimit });
    this.applyResources(cg, { path: r.cgroupPath, writes, cpuset, unified });
  }

  async exec(
    id: string,
    p: OciProcess,
    o: { pidFile?: string; consoleSocket?: string; detach: boolean; preserveFds?: number },
  ): Promise<number> {
    const r = this.load(id);
    if (this.status(r) !== 'running' && this.status(r) !== 'created') throw new PaeneError('wrong-state', 'container not running');
    const proc = translateProcess(p, 'process');
    if (r.seccomp) proc.seccomp = Buffer.from(r.seccomp, 'hex');
    if (proc.terminal && !o.consoleSocket)
      throw new PaeneError('invalid-argument', 'process.terminal is true: --console-socket is required');
    const t = this.joinTokens(r);
    if (o.consoleSocket) t.push(['console', o.consoleSocket]);
    if (o.preserveFds) t.push(['preserve', String(o.preserveFds)]);
    t.push(...processTokens(proc));
    const planFile = path.join(this.dir(id), `exec-${process.pid}-${Date.now()}.plan`);
    writeFileAtomic(planFile, encodeTokens(t), 0o600);
    try {
      const run = await this.runNative(o.detach ? 'exec-detach' : 'exec', planFile, !o.detach, undefined, o.preserveFds ?? 0);
      if (o.pidFile) writeFileAtomic(path.resolve(o.pidFile), String(run.pid));
      fs.rmSync(planFile, { force: true });
      return run.exit ? await run.exit : 0;
    } finally {
      fs.rmSync(planFile, { force: true });
    }
  }

  /** What a new process inside the container joins: its init's namespaces (those not ours), cgroups, root. */
  private joinTokens(r: OciRecord): Entry[] {
    const t: Entry[] = [['pid', String(r.pid)]];
    for (const ns of r.namespaces) {
      const file = NS_FILE[ns as keyof typeof NS_FILE];
      // a namespace the container shares with us: joining it is a no-op, and user would fail with EINVAL
      const mine = fs.readlinkSync(`/proc/self/ns/${file}`);
      const theirs = fs.readlinkSync(`/proc/${r.pid}/ns/${file}`);
      if (mine !== theirs) t.push(['ns', ns, `/proc/${r.pid}/ns/${file}`]);
    }
    const cg = cgroupOf(this.host, r.cgroupPath);
    for (const f of cg.procsFiles()) t.push(['cgroup', f]);
    const cs = cpusetDir(r.cgroupPath);
    if (cs) t.push(['cgroup', path.join(cs, 'cgroup.procs')]);
    const procs = t.filter((e) => e[0] === 'cgroup').map((e) => e[1] as string);
    for (const d of otherHierarchies(r.cgroupPath, procs, false)) t.push(['cgroup', path.join(d, 'cgroup.procs')]);
    if (r.hostMounts) t.push(['chroot', `/proc/${r.pid}/root`]);
    return t;
  }

  /**
   * createContainer / startContainer hooks run inside the container's namespaces and cgroups with
   * the credentials of its process (user, capabilities, no_new_privs, seccomp filter), as runc's
   * do: an image cannot gain through a hook more than its process has. createContainer's path
   * resolves in the runtime's namespace (paene-oci opens it on the host and runs a sealed copy),
   * startContainer's in the container's, as the runtime-spec says. The state is on stdin.
   */
  private async runContainerHooks(r: OciRecord, hooks: OciHook[], kind: 'createContainer' | 'startContainer'): Promise<void> {
    if (hooks.length === 0) return;
    const st = JSON.stringify({ ...this.stateOf(r), status: 'created' });
    const proc = translateProcess(r.process, 'process');
    if (r.seccomp) proc.seccomp = Buffer.from(r.seccomp, 'hex');
    for (const [i, h] of hooks.entries()) {
      const t = this.joinTokens(r);
      t.push([kind === 'createContainer' ? 'exe-host' : 'exe', h.path]);
      t.push(...processTokens({ ...proc, args: h.args ?? [h.path], env: h.env ?? [], cwd: '/', terminal: false, consoleSize: undefined }));
      const planFile = path.join(this.dir(r.id), `hook-${kind}-${i}.plan`);
      writeFileAtomic(planFile, encodeTokens(t), 0o600);
      try {
        const run = await this.runNative('exec', planFile, true, st);
        const code = run.exit ? await run.exit : 0;
        if (code !== 0) throw new PaeneError('internal', `${kind} hook ${h.path} failed: exit status ${code}`);
      } catch (e) {
        if (e instanceof PaeneError && e.message.startsWith(kind)) throw e;
        throw new PaeneError('internal', `${kind} hook ${h.path} failed: ${(e as Error).message}`);
      } finally {
        fs.rmSync(planFile, { force: true });
      }
    }
  }

  private async runHooks(r: OciRecord, hooks: OciHook[], kind: string, fatal: boolean): Promise<void> {
    if (hooks.length === 0) return;
    const st = JSON.stringify({
      ...this.stateOf(r),
      status: kind === 'poststop' ? 'stopped' : kind === 'poststart' ? 'running' : 'created',
    });
    for (const h of hooks) {
      const res = spawnSync(h.path, (h.args ?? [h.path]).slice(1), {
        argv0: (h.args ?? [h.path])[0],
        input: st,
        env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
        timeout: (h.timeout ?? 0) * 1000 || undefined,
        encoding: 'utf8',
      });
      if (res.status !== 0) {
        const msg =
          `${kind} hook ${h.path} failed: ${res.error?.message ?? `exit status ${res.status ?? res.signal}`} ${res.stderr ?? ''}`.trim();
        if (fatal) throw new PaeneError('internal', msg);
        this.log.warn(msg);
      }
    }
  }

  private stateOf(r: OciRecord): OciState {
    return { ociVersion: OCI_VERSION, id: r.id, status: 'created', pid: r.pid, bundle: r.bundle, annotations: r.annotations };
  }
}

/** The paene-oci sync text ("pid N", "ok", "err ...") read into a pid, or the error it reports. */
export function readSync(cmd: string, text: string): { pid: number } | { error: string } | undefined {
  const lines = text.split('\n');
  const err = lines.find((l) => l.startsWith('err '));
  if (err) return { error: err.slice(4) };
  const pidLine = lines.find((l) => l.startsWith('pid '));
  if (!pidLine || (cmd === 'create' && !lines.includes('ok'))) return undefined;
  return { pid: Number(pidLine.slice(4)) };
}

/**
 * Runs paene-oci here, with our stdio, the caller's descriptors 3 …
 * 3+preserve-1 at the same numbers, and a sync pipe right after them.
 * paene-oci closes every other descriptor it inherits (ours are
 * close-on-exec; a caller's may not be).
 */
function runNativeHere(cmd: string, planFile: string, wait: boolean, input?: string, preserve = 0): Promise<NativeRun> {
  return new Promise((resolve, reject) => {
    const preserved = Array.from({ length: preserve }, (_, i) => 3 + i);
    const syncFd = 3 + preserve;
    const stdio: ('inherit' | 'pipe' | number)[] = [input === undefined ? 'inherit' : 'pipe', 'inherit', 'inherit', ...preserved, 'pipe'];
    const child = spawn(nativePath('paene-oci'), [cmd, planFile, String(syncFd)], { stdio, detached: false });
    if (input !== undefined) {
      // a hook may exit without reading its state (/bin/false): EPIPE then is no error of ours
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
    const sync = child.stdio[syncFd] as NodeJS.ReadableStream;
    let text = '';
    sync.setEncoding('utf8');
    sync.on('data', (d: string) => (text += d));
    const exit = new Promise<number>((res) =>
      child.on('exit', (code, sig) => res(code ?? 128 + (sig ? (os.constants.signals[sig] ?? 9) : 0))),
    );
    sync.on('end', () => {
      const r = readSync(cmd, text);
      if (r === undefined)
        void exit.then((code) => reject(new PaeneError('internal', `paene-oci ${cmd} failed (status ${code}) without a message`)));
      else if ('error' in r) reject(new PaeneError('internal', r.error));
      else resolve({ pid: r.pid, exit: wait ? exit : undefined });
    });
    child.on('error', (e) => reject(new PaeneError('internal', `cannot run paene-oci: ${e.message}`)));
  });
}

/** What `paene list` and `paene ps --all` show of paene-runc's containers; none when the root does not exist. */
export interface OciSummary {
  id: string;
  status: OciStatus;
  pid: number;
  bundle: string;
  pids: number[];
}

export function ociSummaries(root = DEFAULT_OCI_ROOT): OciSummary[] {
  if (!fs.existsSync(root)) return [];
  const rt = new OciRuntime(root, { warn: () => undefined });
  return rt.list().map((r) => {
    const status = rt.status(r);
    return { id: r.id, status, pid: status === 'stopped' ? 0 : r.pid, bundle: r.bundle, pids: status === 'stopped' ? [] : rt.pids(r) };
  });
}
