// cgroup adapter: one ContextCgroup per context, spanning every controller
// hierarchy the host offers, on v1, v2 and hybrid hosts alike.
//
// v1 (and hybrid): one directory per mounted controller hierarchy,
//   /sys/fs/cgroup/<controller>/<parent>/<name>.
// v2: /sys/fs/cgroup/<parent>/<name>, controllers enabled down the tree.
// Hybrid: the v1 directories carry the limits; the unified (v2) directory
//   is still created because it offers cgroup.kill and cgroup.freeze.
// On v1 (and hybrid) a context shares the memory, blkio and devices groups of
//   its siblings (<parent>/_shared) unless its limits need its own, and has
//   no freezer group where the unified directory freezes (core/cgroupmap).
//   On v2 a context without a memory limit lives in <parent>/_pool/<name>,
//   where memory is not enabled: its memory is the pool's.

import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../model/errors.js';
import { type CgroupVersion, type CgroupWrite, POOL_GROUP, SHAREABLE_V1, SHARED_GROUP, type ShareableV1 } from './map.js';

/** v1 controllers paene uses; others (cpuset, net_cls, ...) are left alone. */
export const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'blkio', 'devices', 'freezer'] as const;
export const V2_CONTROLLERS = ['cpu', 'memory', 'pids', 'io'] as const;

export interface CgroupHost {
  layout: 'v1' | 'v2' | 'hybrid';
  /** controller -> mount point of its v1 hierarchy */
  v1: Map<string, string>;
  /** the cgroup2 mount, if any, and the controllers usable there */
  unified?: { mount: string; controllers: string[] };
}

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

/** Parses /proc/self/mountinfo lines (pure, for tests). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const f = pre.split(' ');
    const g = post.split(' ');
    out.push({ mountPoint: unescapeMount(f[4]), fsType: g[0], superOptions: (g[2] ?? '').split(',') });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function cgroupHostFrom(mounts: MountEntry[], unifiedControllers: (mount: string) => string[]): CgroupHost {
  const v1 = new Map<string, string>();
  let unified: CgroupHost['unified'];
  for (const m of mounts) {
    if (m.fsType === 'cgroup') {
      for (const opt of m.superOptions) {
        if ((V1_CONTROLLERS as readonly string[]).includes(opt) && !v1.has(opt)) v1.set(opt, m.mountPoint);
      }
    } else if (m.fsType === 'cgroup2' && !unified) {
      unified = { mount: m.mountPoint, controllers: [] };
    }
  }
  if (unified) {
    const avail = unifiedControllers(unified.mount);
    unified.controllers = avail.filter((c) => (V2_CONTROLLERS as readonly string[]).includes(c) && !v1.has(c === 'io' ? 'blkio' : c));
  }
  const layout = v1.size === 0 ? 'v2' : unified ? 'hybrid' : 'v1';
  return { layout, v1, unified };
}

let cachedHost: CgroupHost | undefined;

export function detectCgroupHost(): CgroupHost {
  if (cachedHost) return cachedHost;
  if (process.platform !== 'linux') throw new PaeneError('unsupported', 'paene needs Linux (cgroups, namespaces, overlayfs)');
  const mounts = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  const host = cgroupHostFrom(mounts, (mount) => {
    try {
      return fs.readFileSync(path.join(mount, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  });
  if (host.v1.size === 0 && !host.unified) {
    throw new PaeneError('unsupported', 'no cgroup filesystem is mounted (looked for cgroup and cgroup2 in /proc/self/mountinfo)');
  }
  cachedHost = host;
  return host;
}

/** Which cgroup version carries the limits (pure mapping input for core/limits). */
export function limitsVersion(host: CgroupHost): CgroupVersion {
  return host.layout === 'v2' ? 'v2' : 'v1';
}

function writeFile(file: string, value: string): void {
  try {
    fs.writeFileSync(file, value);
  } catch (e) {
    throw new PaeneError('internal', `cannot write '${value}' to ${file}: ${(e as Error).message}`, { cause: e });
  }
}

function readFile(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

const isShareable = (c: string): c is ShareableV1 => (SHAREABLE_V1 as readonly string[]).includes(c);

export class ContextCgroup {
  /** v2: whether create() put it in the pool; before that (or in another process) the directory that exists says */
  private pooled?: boolean;

  constructor(
    readonly host: CgroupHost,
    readonly parent: string,
    readonly name: string,
  ) {}

  /** v2 with the memory controller: contexts without a memory limit go to the pool. */
  private get v2Memory(): boolean {
    return this.host.v1.size === 0 && (this.host.unified?.controllers.includes('memory') ?? false);
  }

  private isPooled(): boolean {
    if (!this.v2Memory || !this.host.unified) return false;
    this.pooled ??= fs.existsSync(path.join(this.host.unified.mount, this.parent, POOL_GROUP, this.name));
    return this.pooled;
  }

  private v1Dir(controller: string): string | undefined {
    const mount = this.host.v1.get(controller);
    return mount ? path.join(mount, this.parent, this.name) : undefined;
  }

  /** The group a v1 controller's processes share with the siblings (shareable controllers only). */
  sharedDir(controller: ShareableV1): string | undefined {
    const mount = this.host.v1.get(controller);
    return mount ? path.join(mount, this.parent, SHARED_GROUP) : undefined;
  }

  /** Whether the context has a group of its own for this controller (a shareable v1 one may not). */
  owns(controller: string): boolean {
    const d = this.v1Dir(controller);
    if (!d || !isShareable(controller)) return this.dir(controller) !== undefined;
    return fs.existsSync(d);
  }

  /**
   * The context's own directory for a controller (v1 hierarchy, or the v2
   * directory); undefined where the host lacks it or the context shares it.
   */
  dir(controller: string): string | undefined {
    const v1 = this.v1Dir(controller);
    if (v1) return isShareable(controller) && !fs.existsSync(v1) ? undefined : v1;
    const v2c = controller === 'blkio' ? 'io' : controller === 'cpuacct' ? 'cpu' : controller;
    if (v2c === 'memory' && this.isPooled()) return undefined;
    if (this.host.unified && this.host.unified.controllers.includes(v2c)) return this.unifiedDir;
    return undefined;
  }

  get unifiedDir(): string | undefined {
    const u = this.host.unified;
    if (!u) return undefined;
    return this.isPooled() ? path.join(u.mount, this.parent, POOL_GROUP, this.name) : path.join(u.mount, this.parent, this.name);
  }

  /** Whether the unified directory freezes (cgroup.freeze, Linux 5.2): then no v1 freezer group is made. */
  private unifiedFreezes(): boolean {
    const u = this.host.unified;
    return u !== undefined && fs.existsSync(path.join(u.mount, this.parent, 'cgroup.freeze'));
  }

  /** Every directory this context may have, one per distinct hierarchy (its own, never the shared ones). */
  dirs(): string[] {
    const set = new Set<string>();
    for (const mount of new Set(this.host.v1.values())) set.add(path.join(mount, this.parent, this.name));
    if (this.unifiedDir) set.add(this.unifiedDir);
    return [...set];
  }

  exists(): boolean {
    return this.dirs().some((d) => fs.existsSync(d));
  }

  /**
   * Creates the directories: its own for the per-context controllers and for
   * the shareable ones in `own`, the shared group (with `sharedWrites` made
   * once, before any process can join it) for the others. On v2 it first
   * enables the controllers down the tree.
   */
  create(own: readonly ShareableV1[] = SHAREABLE_V1, sharedWrites: CgroupWrite[] = []): void {
    const u = this.host.unified;
    if (u) {
      const parentDir = path.join(u.mount, this.parent);
      fs.mkdirSync(parentDir, { recursive: true });
      const enableAll = (dir: string, controllers: string[]) => {
        if (controllers.length === 0) return;
        const have = (readFile(path.join(dir, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/);
        if (!controllers.every((c) => have.includes(c)))
          writeFile(path.join(dir, 'cgroup.subtree_control'), controllers.map((c) => '+' + c).join(' '));
      };
      // every level down to the parent: a controller is enabled below a directory only if it is enabled in it
      const levels = [u.mount];
      for (const part of this.parent.split('/').filter(Boolean)) levels.push(path.join(levels[levels.length - 1], part));
      for (const d of levels) enableAll(d, u.controllers);
      if (this.v2Memory) {
        this.pooled = !own.includes('memory');
        if (this.pooled) {
          const pool = path.join(parentDir, POOL_GROUP);
          fs.mkdirSync(pool, { recursive: true });
          enableAll(
            pool,
            u.controllers.filter((c) => c !== 'memory'),
          );
        }
      }
      fs.mkdirSync(this.unifiedDir as string, { recursive: true });
    }
    // Per hierarchy (v1 may mount several controllers together): shared only if every controller there may be.
    const skipFreezer = this.unifiedFreezes();
    const byMount = new Map<string, string[]>();
    for (const [controller, mount] of this.host.v1) {
      if (controller === 'freezer' && skipFreezer) continue;
      byMount.set(mount, [...(byMount.get(mount) ?? []), controller]);
    }
    for (const [mount, controllers] of byMount) {
      const shared = controllers.every((c) => isShareable(c) && !own.includes(c));
      if (shared)
        this.ensureShared(
          mount,
          sharedWrites.filter((w) => controllers.includes(w.controller)),
        );
      else fs.mkdirSync(path.join(mount, this.parent, this.name), { recursive: true });
    }
  }

  /**
   * The shared group, made whole before it appears: under a temporary name,
   * its writes made, then renamed into place (v1 cgroupfs renames
   * directories), so no process ever joins it before its rules hold.
   */
  private ensureShared(mount: string, writes: CgroupWrite[]): void {
    const dir = path.join(mount, this.parent, SHARED_GROUP);
    if (fs.existsSync(dir)) return;
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    const tmp = `${dir}.${process.pid}.${this.name}`;
    fs.mkdirSync(tmp);
    try {
      for (const w of writes) writeFile(path.join(tmp, w.file), w.value);
      fs.renameSync(tmp, dir);
    } catch (e) {
      fs.rmdirSync(tmp);
      if (!fs.existsSync(dir))
        throw new PaeneError('internal', `cannot make the shared cgroup ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Gives a running context its own group for a shareable controller (a
   * live limit that needs one): made, then every process moved in while the
   * context is frozen, so none forks past the move. Charges already made
   * stay with the shared group; new ones are the context's.
   */
  async adopt(controller: ShareableV1): Promise<void> {
    if (controller === 'memory' && this.isPooled()) {
      throw new PaeneError(
        'wrong-state',
        `'${this.name}' was started without a memory cgroup of its own (it had no memory limit); on a cgroup v2 host it gets one when it starts: stop it, set the limit, start it`,
      );
    }
    const d = this.v1Dir(controller);
    if (!d || fs.existsSync(d)) return;
    fs.mkdirSync(d);
    const frozen = await this.freeze();
    try {
      if (!frozen)
        throw new PaeneError('busy', `cannot freeze '${this.name}' to move it into a ${controller} cgroup of its own; try again`);
      for (const pid of this.pids()) {
        try {
          writeFile(path.join(d, 'cgroup.procs'), String(pid));
        } catch (e) {
          if (fs.existsSync(`/proc/${pid}`)) throw e; // a process that exited needs no move
        }
      }
    } catch (e) {
      // back to the shared group: nothing half-moved stays behind
      const shared = this.sharedDir(controller) as string;
      for (const pid of (readFile(path.join(d, 'cgroup.procs')) ?? '').split('\n').filter(Boolean)) {
        try {
          fs.writeFileSync(path.join(shared, 'cgroup.procs'), pid);
        } catch {
          /* exited */
        }
      }
      fs.rmdirSync(d);
      throw e;
    } finally {
      this.thaw();
    }
  }

  /** The cgroup.procs files a new process writes itself into. */
  procsFiles(): string[] {
    const files = this.dirs()
      .filter((d) => fs.existsSync(d))
      .map((d) => path.join(d, 'cgroup.procs'));
    for (const c of SHAREABLE_V1) {
      const shared = this.sharedDir(c);
      if (shared && !this.owns(c)) files.push(path.join(shared, 'cgroup.procs'));
    }
    return files;
  }

  /**
   * Applies limit writes from core/limits (v1: controller names the hierarchy).
   * An `optional` write (e.g. burst on kernels before 5.14, resetting a limit
   * that was never set) is skipped where the controller or file is missing.
   */
  apply(writes: CgroupWrite[]): void {
    for (const w of writes) {
      const d = this.dir(w.controller);
      if (!d) {
        if (w.optional) continue;
        if (this.host.v1.has(w.controller))
          throw new PaeneError('wrong-state', `'${this.name}' shares the ${w.controller} cgroup with its siblings (needed for ${w.file})`);
        throw new PaeneError('unsupported', `this host has no '${w.controller}' cgroup controller (needed for ${w.file})`);
      }
      const file = path.join(d, w.file);
      if (w.optional && !fs.existsSync(file)) continue;
      writeFile(file, w.value);
    }
  }

  read(controller: string, file: string): string | undefined {
    const d = this.dir(controller);
    return d ? readFile(path.join(d, file))?.trim() : undefined;
  }

  /** memory.stat as numbers (v1 and v2 name their keys differently). */
  memoryStat(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const line of (this.read('memory', 'memory.stat') ?? '').split('\n')) {
      const [k, v] = line.split(' ');
      if (k && v !== undefined) out[k] = Number(v);
    }
    return out;
  }

  /** Bytes of page cache charged to this context (v1 `cache`, v2 `file`). */
  pageCacheBytes(): number {
    const st = this.memoryStat();
    return st.cache ?? st.file ?? 0;
  }

  /** Best effort: a failure leaves a dying cgroup, not a wrong state. */
  private uncharge(): void {
    const d = this.owns('memory') ? this.dir('memory') : undefined;
    if (!d || !fs.existsSync(d)) return;
    for (const [file, value] of [
      ['memory.force_empty', '0'],
      ['memory.reclaim', String(2 ** 40)],
    ]) {
      const f = path.join(d, file);
      if (!fs.existsSync(f)) continue;
      try {
        fs.writeFileSync(f, value);
      } catch {
        /* EAGAIN: not all reclaimed; the rest goes with the cgroup */
      }
    }
  }

  /**
   * Host pids of every process in the context, those of its child groups
   * included (an API exec's `paene-exec-*` group lives below the unified
   * one: ps, stats and a live limit that moves the context's processes must
   * see them too).
   */
  pids(): number[] {
    const d = this.unifiedDir ?? this.dirs()[0];
    const out: number[] = [];
    const walk = (dir: string, depth: number): void => {
      const text = readFile(path.join(dir, 'cgroup.procs'));
      if (text) for (const l of text.split('\n')) if (l) out.push(Number(l));
      if (depth >= 4) return;
      let subs: fs.Dirent[] = [];
      try {
        subs = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return; // gone meanwhile
      }
      for (const e of subs) if (e.isDirectory()) walk(path.join(dir, e.name), depth + 1);
    };
    if (d) walk(d, 0);
    return out;
  }

  /**
   * Freezes every process (v2 cgroup.freeze, else the v1 freezer) and waits
   * up to 1 s until the kernel says frozen; returns whether it did. A caller
   * that needs a snapshot must check (a task in uninterruptible sleep can
   * hold the freeze off); a caller that kills does not need to.
   */
  async freeze(): Promise<boolean> {
    if (this.unifiedDir && fs.existsSync(path.join(this.unifiedDir, 'cgroup.freeze'))) {
      writeFile(path.join(this.unifiedDir, 'cgroup.freeze'), '1');
      for (let i = 0; i < 200; i++) {
        if (/frozen 1/.test(readFile(path.join(this.unifiedDir, 'cgroup.events')) ?? '')) return true;
        await sleep(5);
      }
      return false;
    }
    const f = this.host.v1.has('freezer') ? this.dir('freezer') : undefined;
    if (!f) throw new PaeneError('unsupported', 'no freezer: neither cgroup v2 nor the v1 freezer controller is mounted');
    writeFile(path.join(f, 'freezer.state'), 'FROZEN');
    for (let i = 0; i < 200; i++) {
      if (readFile(path.join(f, 'freezer.state'))?.trim() === 'FROZEN') return true;
      await sleep(5);
    }
    return false;
  }

  thaw(): void {
    if (this.unifiedDir && fs.existsSync(path.join(this.unifiedDir, 'cgroup.freeze'))) {
      writeFile(path.join(this.unifiedDir, 'cgroup.freeze'), '0');
      return;
    }
    const f = this.host.v1.has('freezer') ? this.dir('freezer') : undefined;
    if (f) writeFile(path.join(f, 'freezer.state'), 'THAWED');
  }

  /**
   * Kills every process of the context and waits until none is left.
   * cgroup.kill where the kernel has it; otherwise freeze, SIGKILL each pid,
   * thaw (a process-group kill would miss children that called setsid).
   */
  async killAll(timeoutMs = 5000): Promise<void> {
    if (!this.exists()) return;
    const killFile = this.unifiedDir ? path.join(this.unifiedDir, 'cgroup.kill') : undefined;
    const deadline = Date.now() + timeoutMs;
    // Killed processes leave in a few ms (the init is reaped by the monitor): look again soon, then less often.
    let pause = 1;
    while (this.allPids().length > 0) {
      if (killFile && fs.existsSync(killFile)) {
        writeFile(killFile, '1');
      } else {
        await this.freeze();
        for (const pid of this.allPids()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
        this.thaw();
      }
      if (Date.now() > deadline) {
        throw new PaeneError(
          'internal',
          `processes of context '${this.name}' survived SIGKILL for ${timeoutMs} ms: ${this.allPids().join(' ')}`,
        );
      }
      await sleep(pause);
      pause = Math.min(pause * 2, 10);
    }
    if (killFile === undefined || !fs.existsSync(killFile)) this.thaw();
  }

  private allPids(): number[] {
    const set = new Set<number>();
    for (const d of this.dirs()) {
      for (const l of (readFile(path.join(d, 'cgroup.procs')) ?? '').split('\n')) if (l) set.add(Number(l));
    }
    return [...set];
  }

  /**
   * Removes the directories (must be empty of processes). Idempotent. Its
   * memory cgroup is emptied first (v1 memory.force_empty, v2 memory.reclaim):
   * page cache still charged to a removed memory cgroup keeps it alive as a
   * dying cgroup, with its kernel state, until memory pressure reclaims it.
   */
  async remove(): Promise<void> {
    this.uncharge();
    for (const d of this.dirs()) {
      for (let i = 0; ; i++) {
        try {
          fs.rmdirSync(d);
          break;
        } catch (e) {
          const code = errnoOf(e);
          if (code === 'ENOENT') break;
          if (code === 'EBUSY' && i < 100) {
            await sleep(10); // the last task is still exiting
            continue;
          }
          throw new PaeneError('internal', `cannot remove cgroup ${d}: ${(e as Error).message}`, { cause: e });
        }
      }
    }
  }
}

/** Whether a parent holds a context's group; stops at the first (a destroy asks this with 10,000 there). */
function hasContextGroup(parentDir: string): boolean {
  let dir: fs.Dir;
  try {
    dir = fs.opendirSync(parentDir);
  } catch {
    return false;
  }
  try {
    for (let e = dir.readSync(); e; e = dir.readSync()) {
      if (!e.isDirectory() || e.name === SHARED_GROUP) continue;
      if (e.name !== POOL_GROUP || hasContextGroup(path.join(parentDir, POOL_GROUP))) return true;
    }
    return false;
  } finally {
    dir.closeSync();
  }
}

/**
 * Removes the per-root parent directories once no context cgroup is left
 * under them, with the shared groups (which the kernel refuses to remove
 * while a process is in one). A context always has a directory of its own
 * in the unified hierarchy (or, on v1, in the cpu one): that is where one is looked for.
 */
export function removeParentIfEmpty(host: CgroupHost, parent: string): void {
  const probe = host.unified?.mount ?? host.v1.get('cpu') ?? [...host.v1.values()][0];
  if (probe && hasContextGroup(path.join(probe, parent))) return;
  const mounts = new Set(host.v1.values());
  if (host.unified) mounts.add(host.unified.mount);
  for (const m of mounts) {
    for (const d of [path.join(m, parent, SHARED_GROUP), path.join(m, parent, POOL_GROUP), path.join(m, parent)]) {
      try {
        fs.rmdirSync(d);
      } catch {
        /* not empty, in use, or already gone */
      }
    }
  }
}
