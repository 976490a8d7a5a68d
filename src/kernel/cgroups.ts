// cgroup adapter: one ContextCgroup per context, spanning every controller
// hierarchy the host offers, on v1, v2 and hybrid hosts alike.
//
// v1 (and hybrid): one directory per mounted controller hierarchy,
//   /sys/fs/cgroup/<controller>/<parent>/<name>.
// v2: /sys/fs/cgroup/<parent>/<name>, controllers enabled down the tree.
// Hybrid: the v1 directories carry the limits; the unified (v2) directory
//   is still created because it offers cgroup.kill and cgroup.freeze.

import { setTimeout as sleep } from 'node:timers/promises';
import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../core/errors.js';
import type { CgroupVersion, CgroupWrite } from '../core/cgroupmap.js';

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


export class ContextCgroup {
  constructor(
    readonly host: CgroupHost,
    readonly parent: string,
    readonly name: string,
  ) {}

  /** The v1 hierarchy directory for a controller, or the v2 directory. */
  dir(controller: string): string | undefined {
    const v1 = this.host.v1.get(controller);
    if (v1) return path.join(v1, this.parent, this.name);
    const v2c = controller === 'blkio' ? 'io' : controller === 'cpuacct' ? 'cpu' : controller;
    if (this.host.unified && this.host.unified.controllers.includes(v2c)) {
      return path.join(this.host.unified.mount, this.parent, this.name);
    }
    return undefined;
  }

  get unifiedDir(): string | undefined {
    return this.host.unified ? path.join(this.host.unified.mount, this.parent, this.name) : undefined;
  }

  /** Every directory of this context, one per distinct hierarchy. */
  dirs(): string[] {
    const set = new Set<string>();
    for (const mount of new Set(this.host.v1.values())) set.add(path.join(mount, this.parent, this.name));
    if (this.unifiedDir) set.add(this.unifiedDir);
    return [...set];
  }

  exists(): boolean {
    return this.dirs().some((d) => fs.existsSync(d));
  }

  /** Creates the directories; on v2 first enables the controllers down the tree. */
  create(): void {
    const u = this.host.unified;
    if (u && u.controllers.length > 0) {
      const enable = u.controllers.map((c) => '+' + c).join(' ');
      const parentDir = path.join(u.mount, this.parent);
      fs.mkdirSync(parentDir, { recursive: true });
      for (const d of [u.mount, parentDir]) {
        const have = (readFile(path.join(d, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/);
        if (!u.controllers.every((c) => have.includes(c))) writeFile(path.join(d, 'cgroup.subtree_control'), enable);
      }
    }
    for (const d of this.dirs()) fs.mkdirSync(d, { recursive: true });
  }

  /** The cgroup.procs files a new process writes itself into. */
  procsFiles(): string[] {
    return this.dirs().map((d) => path.join(d, 'cgroup.procs'));
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

  /** Host pids of every process in the context. */
  pids(): number[] {
    const d = this.unifiedDir ?? this.dirs()[0];
    const text = d ? readFile(path.join(d, 'cgroup.procs')) : undefined;
    if (!text) return [];
    return text.split('\n').filter(Boolean).map(Number);
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
        throw new PaeneError('internal', `processes of context '${this.name}' survived SIGKILL for ${timeoutMs} ms: ${this.allPids().join(' ')}`);
      }
      await sleep(10);
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

  /** Removes the directories (must be empty of processes). Idempotent. */
  async remove(): Promise<void> {
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

/** Removes the per-root parent directories once no context cgroup is left under them. */
export function removeParentIfEmpty(host: CgroupHost, parent: string): void {
  const mounts = new Set(host.v1.values());
  if (host.unified) mounts.add(host.unified.mount);
  for (const m of mounts) {
    try {
      fs.rmdirSync(path.join(m, parent));
    } catch {
      /* not empty, or already gone */
    }
  }
}
