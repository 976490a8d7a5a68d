// Where everything paene keeps on the host lives, derived from one state root.
//
//   ROOT/contexts/NAME/config.json   the context's spec (written at create)
//   ROOT/contexts/NAME/state.json    what the runtime knows of its running instance
//   ROOT/contexts/NAME/exec.plan     while it runs: how to enter it, for the native `paene exec`
//   ROOT/contexts/NAME/layer/upper|work  the overlay's private layer; with a
//                                    disk limit, layer/ is where the context's
//                                    own filesystem (disk.img) is mounted
//   ROOT/contexts/NAME/disk.img      that filesystem: a sparse ext4 image
//   ROOT/contexts/NAME/rootfs        the mount point of its merged root
//   ROOT/images/                     the image store (owned by src/image)
//   ROOT/scratch/NAME/{dev,shm,tmp}  a running context's /dev, /dev/shm and /tmp,
//                                    in one tmpfs per root (src/kernel/scratch.ts)
//   ROOT/scratch/.empty              the empty directory bound over masked paths
//   ROOT/locks/                      per-context and global locks
//   ROOT/xids/XID                    which context holds an xid (runtime/xids.ts)
//   ROOT/addrs/ADDR                  which context holds an address (runtime/claims.ts)
//
// Cgroups are named after the context under a `paene` parent; a state root
// other than the default gets `paene-<hash>` so two roots never collide.

import { createHash } from 'node:crypto';
import path from 'node:path';

export { DEFAULT_ROOT } from '../proto/names.js';
import { DEFAULT_ROOT } from '../proto/names.js';

export function resolveRoot(explicit?: string): string {
  return path.resolve(explicit ?? process.env.PAENE_ROOT ?? DEFAULT_ROOT);
}

export class Layout {
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }
  get contextsDir(): string {
    return path.join(this.root, 'contexts');
  }
  get imagesDir(): string {
    return path.join(this.root, 'images');
  }
  get locksDir(): string {
    return path.join(this.root, 'locks');
  }
  contextDir(name: string): string {
    return path.join(this.contextsDir, name);
  }
  configFile(name: string): string {
    return path.join(this.contextDir(name), 'config.json');
  }
  stateFile(name: string): string {
    return path.join(this.contextDir(name), 'state.json');
  }
  /** A running context's exec plan for the native front door (kernel/helper.ts execPlanBytes). */
  /** the main process's log (main.log, rotated main.log.1...) and its state (main.state), written by paene-log */
  logDir(name: string): string {
    return path.join(this.contextDir(name), 'log');
  }

  /** written by a user's `stop`, removed by `start`: `--restart unless-stopped` is not autostarted */
  stoppedMark(name: string): string {
    return path.join(this.contextDir(name), 'stopped-by-user');
  }

  execPlanFile(name: string): string {
    return path.join(this.contextDir(name), 'exec.plan');
  }
  /** The private layer: a plain directory, or the mount point of the context's disk image. */
  layerDir(name: string): string {
    return path.join(this.contextDir(name), 'layer');
  }
  upperDir(name: string): string {
    return path.join(this.layerDir(name), 'upper');
  }
  workDir(name: string): string {
    return path.join(this.layerDir(name), 'work');
  }
  diskImage(name: string): string {
    return path.join(this.contextDir(name), 'disk.img');
  }
  rootfsDir(name: string): string {
    return path.join(this.contextDir(name), 'rootfs');
  }
  get scratchDir(): string {
    return path.join(this.root, 'scratch');
  }
  scratchOf(name: string): string {
    return path.join(this.scratchDir, name);
  }
  get emptyDir(): string {
    return path.join(this.scratchDir, '.empty');
  }
  /** Parent cgroup name, shared by every controller hierarchy. */
  get cgroupParent(): string {
    if (this.root === DEFAULT_ROOT) return 'paene';
    this.parentCache ??= 'paene-' + createHash('sha256').update(this.root).digest('hex').slice(0, 8);
    return this.parentCache;
  }
  private parentCache?: string;
}
