// Which xid belongs to which context, without reading every config: one
// claim per xid, ROOT/xids/<xid>, a symbolic link to the owner's name. `create`
// reads the directory's names (not the files) to find the lowest free xid,
// so its cost does not grow with the number of contexts' configs.
//
// Claims are taken and given back only under the global create lock. A claim
// is made before its context is published and removed after
// the context is gone, so a crash can leave a claim without a context (a
// stale claim: it is retaken when that xid is asked for by number, and
// otherwise only leaves a gap) but never a context without its claim.
// A root made by an older paene has no xids/ yet: it is built once from the
// configs, in a temporary directory renamed into place.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../core/errors.js';
import { allocateXid } from '../core/spec.js';
import { fsyncDir } from '../kernel/atomic.js';
import type { StateStore } from './state.js';

export class XidClaims {
  readonly dir: string;
  constructor(private readonly store: StateStore) {
    this.dir = path.join(store.layout.root, 'xids');
  }

  private file(xid: number): string {
    return path.join(this.dir, String(xid));
  }

  /** The claims directory, built from the configs if this root predates it. Under the create lock. */
  ensure(): void {
    if (fs.existsSync(this.dir)) return;
    fs.mkdirSync(this.store.layout.root, { recursive: true });
    const tmp = `${this.dir}.building.${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { mode: 0o700 });
    for (const n of this.store.names()) {
      let xid: number;
      try {
        xid = this.store.readConfig(n).xid;
      } catch {
        continue; // a broken config owns nothing (`list` reports it)
      }
      fs.symlinkSync(n, path.join(tmp, String(xid)));
    }
    fs.renameSync(tmp, this.dir);
    fsyncDir(path.dirname(this.dir));
  }

  /** Owner named by the claim of `xid`, if any. */
  ownerOf(xid: number): string | undefined {
    try {
      return fs.readlinkSync(this.file(xid));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** A claim is real when its owner exists and its config says this xid (else a crash left it). */
  private holds(owner: string, xid: number): boolean {
    try {
      return this.store.readConfig(owner).xid === xid;
    } catch {
      return false;
    }
  }

  /**
   * A claim is a symbolic link named after the xid, pointing at the owner's
   * name: created in one step, refused if it exists, and pure metadata, which
   * a journaling filesystem commits in order — a context published (renamed
   * into place) after its claim never survives a crash without it. So no
   * fsync per claim (one costs more than the rest of a create).
   */
  private write(xid: number, name: string, exclusive: boolean): boolean {
    if (!exclusive) {
      const tmp = `${this.file(xid)}.${process.pid}.tmp`;
      fs.rmSync(tmp, { force: true });
      fs.symlinkSync(name, tmp);
      fs.renameSync(tmp, this.file(xid));
      return true;
    }
    try {
      fs.symlinkSync(name, this.file(xid));
      return true;
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') return false;
      throw e;
    }
  }

  /** Claims `xid` (or the lowest free one) for `name`. Under the create lock. */
  claim(name: string, xid?: number): number {
    this.ensure();
    if (xid !== undefined) {
      if (this.write(xid, name, true)) return xid;
      const owner = this.ownerOf(xid);
      if (owner !== undefined && this.holds(owner, xid)) throw new PaeneError('exists', `xid ${xid} is already used by context '${owner}'`);
      this.write(xid, name, false); // a stale claim (or our own from a crashed create): retake it
      return xid;
    }
    const taken = new Set(fs.readdirSync(this.dir).map(Number));
    for (;;) {
      const x = allocateXid(taken); // throws when none is left
      if (this.write(x, name, true)) return x;
      taken.add(x);
    }
  }

  /** Gives `xid` back if `name` holds it. Under the create lock, after the context is gone. */
  release(name: string, xid: number): void {
    if (this.ownerOf(xid) === name) fs.rmSync(this.file(xid), { force: true });
  }

  /** The xid `name` holds, by scanning the claims (for a context whose config cannot be read). */
  findByName(name: string): number | undefined {
    if (!fs.existsSync(this.dir)) return undefined;
    for (const f of fs.readdirSync(this.dir)) {
      const x = Number(f);
      if (Number.isInteger(x) && this.ownerOf(x) === name) return x;
    }
    return undefined;
  }
}
