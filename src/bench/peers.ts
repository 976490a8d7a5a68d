// The peer runtimes the benchmarks compare with: runc and crun (OCI bundles
// generated here) and bubblewrap. Every peer container gets an id starting
// with `paene-bench-`, lives in the benchmark's own state directories
// (--root of runc/crun), and its cgroups under `paene-bench/` in each
// hierarchy; cleanupPeers() removes all of it.

import fs from 'node:fs';
import { stopPlanner } from '../oci/planner.js';
import path from 'node:path';
import { PROFILE_CAPS } from '../model/caps.js';
import { MASKED_PATHS, READONLY_PATHS } from '../context/config.js';
import { detectCgroupHost } from '../cgroups/cgroups.js';
import { run } from './common.js';
import { packageRoot } from '../kernel/package.js';

export type OciRuntime = 'runc' | 'crun' | 'paene-runc';

export const PEER_PREFIX = 'paene-bench-';
export const PEER_CGROUP_PARENT = 'paene-bench';

/** The program's path, or undefined when it is not installed. */
export function which(prog: string): string | undefined {
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const p = path.join(d, prog);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** An OCI runtime's executable: runc and crun from PATH, paene-runc from this package. */
export function ociProgram(rt: OciRuntime): string | undefined {
  if (rt === 'paene-runc') {
    const p = path.join(packageRoot(), 'bin', 'paene-runc');
    return fs.existsSync(p) ? p : undefined;
  }
  return which(rt);
}

export async function peerVersion(prog: string): Promise<string> {
  const p = prog === 'paene-runc' ? ociProgram('paene-runc') : which(prog);
  if (!p) return 'not installed';
  const r = await run(p, ['--version'], { timeoutMs: 5000 });
  return (r.stdout || r.stderr).split('\n')[0].trim();
}

/**
 * An OCI config.json with what a paene context has: pid, ipc, uts, mount and
 * cgroup namespaces, the host network, the secure capability profile, the
 * same masked and read-only /proc paths, /dev, /dev/pts, /dev/shm, /sys
 * read-only, a private /tmp. The root is the base image's files, read-only
 * (paene writes into an overlay instead; see docs/benchmarks.md).
 */
export function ociConfig(args: string[], id: string, rootfs: string): object {
  const caps = PROFILE_CAPS.secure.map((c) => `CAP_${c}`);
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: false,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'bench',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=256m'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      cgroupsPath: `/${PEER_CGROUP_PARENT}/${id}`,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/** Writes a bundle directory: config.json whose root is `rootfs` (absolute, mounted read-only). */
export function writeBundle(dir: string, rootfs: string, args: string[], id: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(ociConfig(args, id, rootfs), null, 2));
}

/** The OCI runtime's state directory for this benchmark (its --root). */
export function stateDirOf(workdir: string, rt: OciRuntime): string {
  return path.join(workdir, `${rt}-state`);
}

export function ociArgs(workdir: string, rt: OciRuntime, ...rest: string[]): string[] {
  return ['--root', stateDirOf(workdir, rt), ...rest];
}

/** Peer containers still known to the runtime (ids with our prefix). */
export async function listPeerContainers(workdir: string, rt: OciRuntime): Promise<string[]> {
  const prog = ociProgram(rt);
  if (!prog || !fs.existsSync(stateDirOf(workdir, rt))) return [];
  const r = await run(prog, ociArgs(workdir, rt, 'list', '-q'), { timeoutMs: 10_000 });
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(PEER_PREFIX));
}

/** Directories of the peers' cgroup parent, in every hierarchy, that still exist. */
export function peerCgroupDirs(): string[] {
  const host = detectCgroupHost();
  const mounts = new Set([...host.v1.values(), ...(host.unified ? [host.unified.mount] : [])]);
  // runc also uses hierarchies paene does not (cpuset, net_cls, perf_event, ...): look at every cgroup mount
  for (const d of ['/sys/fs/cgroup']) {
    try {
      for (const e of fs.readdirSync(d)) mounts.add(path.join(d, e));
    } catch {
      /* no cgroup fs */
    }
  }
  const out: string[] = [];
  for (const m of mounts) {
    const p = path.join(m, PEER_CGROUP_PARENT);
    if (fs.existsSync(p)) out.push(p);
  }
  return out;
}

/** Kills and deletes every peer container of this benchmark, and removes the peers' cgroup parent. */
export async function cleanupPeers(workdir: string): Promise<void> {
  for (const rt of ['runc', 'crun', 'paene-runc'] as const) {
    const prog = ociProgram(rt);
    if (!prog) continue;
    for (const id of await listPeerContainers(workdir, rt)) {
      await run(prog, ociArgs(workdir, rt, 'kill', id, 'KILL'), { timeoutMs: 10_000 });
      await run(prog, ociArgs(workdir, rt, 'delete', '--force', id), { timeoutMs: 10_000 });
    }
    const left = await listPeerContainers(workdir, rt);
    if (left.length) throw new Error(`${rt} containers left: ${left.join(' ')}`);
  }
  // paene-runc's warm planner of the benchmark's root goes with it
  await stopPlanner(stateDirOf(workdir, 'paene-runc'));
  for (const d of peerCgroupDirs()) {
    // children first (a crashed peer may have left its own cgroup)
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && e.name.startsWith(PEER_PREFIX)) fs.rmdirSync(path.join(d, e.name));
    }
    fs.rmdirSync(d);
  }
}
