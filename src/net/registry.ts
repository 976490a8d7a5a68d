// The host-wide registry of network names: addresses, bridges, subnets, nft
// tables and veth prefixes are resources of a network namespace, not of a
// state root, so every root claims them here and sees the others' claims.
//
//   /run/paene/net/ns-DEV-INO/             one scope per network namespace (the nsfs
//                                          inode of the host's, or of a --host-netns)
//   /run/paene/net/ns-DEV-INO/.lock        the scope's lock (kernel/filelock.ts)
//   /run/paene/net/ns-DEV-INO/KIND/KEY     a claim (KIND: addr, bridge, subnet, table,
//                                          prefix, port): a symbolic link to its owner,
//                                          "ROOT" or "NAME@ROOT" (context names have no '@')
//
// The same discipline as a root's own claims (runtime/claims.ts): a claim is
// taken and given back only under the scope's lock; it is made before its
// owner says it and removed after its owner no longer does, so a crash can
// leave a claim without an owner (stale: the owner's root is asked whether it
// still says it, and a stale claim is retaken) but never an owner without a
// claim. A root only ever removes its own claims.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../model/errors.js';
import { acquireFileLockSync } from '../kernel/filelock.js';

export const REGISTRY_BASE = '/run/paene/net';

export type ClaimKind = 'addr' | 'bridge' | 'subnet' | 'table' | 'prefix' | 'port';

export interface Owner {
  /** the state root, an absolute path */
  root: string;
  /** the context, for claims a context holds (addresses) */
  name?: string;
}

export function ownerText(o: Owner): string {
  return o.name !== undefined ? `context '${o.name}' of state root ${o.root}` : `state root ${o.root}`;
}

const sameOwner = (a: Owner, b: Owner): boolean => a.root === b.root && a.name === b.name;

/** The scope of a network namespace file (/proc/self/ns/net, /run/netns/NAME): its nsfs device and inode. */
export function scopeOf(netns = '/proc/self/ns/net'): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(netns);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') throw new PaeneError('not-found', `network namespace ${netns} does not exist`);
    throw e;
  }
  return `ns-${st.dev}-${st.ino}`;
}

/** The scopes whose lock this process holds (the work under it is synchronous, so no other task interleaves). */
const heldHere = new Set<string>();

export class HostRegistry {
  constructor(
    /** the scope's directory */
    readonly dir: string,
    /** whether an owner still says it holds a claim (asked only of other owners' claims); `ageMs`: how old the claim is */
    private readonly stillHeld: (kind: ClaimKind, key: string, owner: Owner, ageMs: number) => boolean,
  ) {}

  /** The registry of the namespace `netns` (default: this process's). PAENE_NET_REGISTRY moves the base (unit tests). */
  static forNetns(
    netns: string | undefined,
    stillHeld: (kind: ClaimKind, key: string, owner: Owner, ageMs: number) => boolean,
    base = process.env.PAENE_NET_REGISTRY ?? REGISTRY_BASE,
  ): HostRegistry {
    return new HostRegistry(path.join(base, scopeOf(netns)), stillHeld);
  }

  private file(kind: ClaimKind, key: string): string {
    const k = key.replaceAll('/', '_');
    if (!k || k.startsWith('.')) throw new PaeneError('internal', `not a registry key: '${key}'`);
    return path.join(this.dir, kind, k);
  }

  /** Runs `fn` under the scope's lock (short, synchronous work only). */
  locked<T>(fn: () => T): T {
    // Re-entered by the same process (a claim inside a claim): the lock is already ours.
    if (heldHere.has(this.dir)) return fn();
    let lock: ReturnType<typeof acquireFileLockSync> | undefined;
    for (let i = 0; lock === undefined; i++) {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      try {
        lock = acquireFileLockSync(
          path.join(this.dir, '.lock'),
          30_000,
          (pid) => `another paene (pid ${pid}) is changing the host's network registry ${this.dir}; try again`,
        );
      } catch (e) {
        // the scope was pruned (prune) between the mkdir and the lock: make it again
        if (errnoOf(e) !== 'ENOENT' || i > 10) throw e;
      }
    }
    heldHere.add(this.dir);
    try {
      return fn();
    } finally {
      heldHere.delete(this.dir);
      lock.release();
    }
  }

  private ageOf(kind: ClaimKind, key: string): number {
    try {
      return Date.now() - fs.lstatSync(this.file(kind, key)).mtimeMs;
    } catch {
      return Number.POSITIVE_INFINITY;
    }
  }

  /** The owner a claim names, stale or not. */
  ownerOf(kind: ClaimKind, key: string): Owner | undefined {
    let t: string;
    try {
      t = fs.readlinkSync(this.file(kind, key));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
    const at = t.indexOf('@');
    return at < 0 ? { root: t } : { name: t.slice(0, at), root: t.slice(at + 1) };
  }

  /** The owner of a live claim other than `me`; undefined when it is free, stale or `me`'s. Under the lock. */
  otherHolder(kind: ClaimKind, key: string, me: Owner): Owner | undefined {
    const o = this.ownerOf(kind, key);
    if (o === undefined || sameOwner(o, me)) return undefined;
    return this.stillHeld(kind, key, o, this.ageOf(kind, key)) ? o : undefined;
  }

  /** Claims `key` for `me` unless another live owner holds it (then returns that owner). Under the lock. */
  claim(kind: ClaimKind, key: string, me: Owner): Owner | undefined {
    const other = this.otherHolder(kind, key, me);
    if (other !== undefined) return other;
    const cur = this.ownerOf(kind, key);
    if (cur !== undefined && sameOwner(cur, me)) return undefined;
    const f = this.file(kind, key);
    fs.mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
    const tmp = `${f}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(me.name !== undefined ? `${me.name}@${me.root}` : me.root, tmp);
    fs.renameSync(tmp, f);
    return undefined;
  }

  /** Gives `key` back if `me` holds it. Under the lock. */
  release(kind: ClaimKind, key: string, me: Owner): void {
    const cur = this.ownerOf(kind, key);
    if (cur !== undefined && sameOwner(cur, me)) fs.rmSync(this.file(kind, key), { force: true });
  }

  /** Every live claim of a kind (keys as claimed, '/' restored for subnets), with its owner. Under the lock. */
  live(kind: ClaimKind): Map<string, Owner> {
    const out = new Map<string, Owner>();
    let keys: string[];
    try {
      keys = fs.readdirSync(path.join(this.dir, kind));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return out;
      throw e;
    }
    for (const k of keys) {
      if (k.endsWith('.tmp')) continue;
      const key = kind === 'subnet' ? k.replace('_', '/') : k;
      const o = this.ownerOf(kind, key);
      if (o !== undefined && this.stillHeld(kind, key, o, this.ageOf(kind, key))) out.set(key, o);
    }
    return out;
  }

  /** Every claim `root` holds (for a root's own clean-up and the tests' leak checks). */
  ownedBy(root: string): { kind: ClaimKind; key: string }[] {
    const out: { kind: ClaimKind; key: string }[] = [];
    for (const kind of ['addr', 'bridge', 'subnet', 'table', 'prefix', 'port'] as const) {
      let keys: string[];
      try {
        keys = fs.readdirSync(path.join(this.dir, kind));
      } catch {
        continue;
      }
      for (const k of keys) {
        const key = kind === 'subnet' ? k.replace('_', '/') : k;
        if (this.ownerOf(kind, key)?.root === root) out.push({ kind, key });
      }
    }
    return out;
  }

  /** Removes the scope's empty directories (a scope of a namespace that is gone, or of roots that gave everything back). */
  prune(): void {
    this.locked(() => {
      for (const kind of ['addr', 'bridge', 'subnet', 'table', 'prefix', 'port']) {
        try {
          fs.rmdirSync(path.join(this.dir, kind));
        } catch {
          /* not empty, or absent */
        }
      }
    });
    try {
      fs.rmdirSync(this.dir); // fails while someone holds the lock or a claim is left
    } catch {
      /* in use */
    }
  }
}
