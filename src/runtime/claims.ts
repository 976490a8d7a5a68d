// Which context holds a unique key (an xid, an address), without reading every
// config: one claim per key, ROOT/<kind>/<key>, a symbolic link to the
// owner's name. A create reads the directory's names (not the files), so its
// cost does not grow with the number of contexts' configs.
//
// Claims are taken and given back only under the global create lock. A claim
// is made before its context is published (or its config rewritten) and
// removed after the context is gone (or no longer says the key), so a crash
// can leave a claim without an owner (a stale claim: retaken when asked for)
// but never an owner without its claim. A root made by an older paene has no
// claims yet: they are built once from the configs, in a temporary directory
// renamed into place.

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, errnoOf } from '../core/errors.js';
import type { ContextConfig } from '../core/spec.js';
import { fsyncDir } from '../kernel/atomic.js';
import type { StateStore } from './state.js';

export class Claims {
  readonly dir: string;
  constructor(
    protected readonly store: StateStore,
    kind: string,
    /** what a context's config says it holds */
    private readonly keysOf: (c: ContextConfig) => string[],
    /** how an error names a key ("xid 7", "address 127.77.0.2") */
    private readonly describe: (key: string) => string,
  ) {
    this.dir = path.join(store.layout.root, kind);
  }

  private file(key: string): string {
    if (!key || key.includes('/') || key.startsWith('.')) throw new PaeneError('internal', `not a claim key: '${key}'`);
    return path.join(this.dir, key);
  }

  /** The claims directory, built from the configs if this root predates it. Under the create lock. */
  ensure(): void {
    if (fs.existsSync(this.dir)) return;
    fs.mkdirSync(this.store.layout.root, { recursive: true });
    const tmp = `${this.dir}.building.${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { mode: 0o700 });
    for (const n of this.store.names()) {
      let keys: string[];
      try {
        keys = this.keysOf(this.store.readConfig(n));
      } catch {
        continue; // a broken config owns nothing (`list` reports it)
      }
      for (const k of keys) fs.symlinkSync(n, path.join(tmp, k));
    }
    fs.renameSync(tmp, this.dir);
    fsyncDir(path.dirname(this.dir));
  }

  /** Owner named by the claim of `key`, if any. */
  ownerOf(key: string): string | undefined {
    try {
      return fs.readlinkSync(this.file(key));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** The owner of `key` whose config really says it (a claim whose owner does not is stale). */
  holder(key: string): string | undefined {
    this.ensure();
    const owner = this.ownerOf(key);
    return owner !== undefined && this.holds(owner, key) ? owner : undefined;
  }

  private holds(owner: string, key: string): boolean {
    try {
      return this.keysOf(this.store.readConfig(owner)).includes(key);
    } catch {
      return false;
    }
  }

  /** Every key claimed (stale ones too: a crash's leftovers only leave gaps). */
  keys(): string[] {
    this.ensure();
    return fs.readdirSync(this.dir).filter((f) => !f.endsWith('.tmp'));
  }

  /**
   * A claim is a symbolic link named after the key, pointing at the owner's
   * name: created in one step, refused if it exists, and pure metadata, which
   * a journaling filesystem commits in order — a context published (renamed
   * into place) after its claim never survives a crash without it. So no
   * fsync per claim (one costs more than the rest of a create).
   */
  protected write(key: string, name: string, exclusive: boolean): boolean {
    if (!exclusive) {
      const tmp = `${this.file(key)}.${process.pid}.tmp`;
      fs.rmSync(tmp, { force: true });
      fs.symlinkSync(name, tmp);
      fs.renameSync(tmp, this.file(key));
      return true;
    }
    try {
      fs.symlinkSync(name, this.file(key));
      return true;
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') return false;
      throw e;
    }
  }

  /** Takes a free key; false if it is claimed (stale or not). Under the create lock. */
  tryClaim(name: string, key: string): boolean {
    this.ensure();
    return this.write(key, name, true);
  }

  /** Claims `key` for `name`: refused if another context holds it; a stale claim (or its own) is retaken. Under the create lock. */
  claim(name: string, key: string): void {
    if (this.tryClaim(name, key)) return;
    const holder = this.holder(key);
    if (holder !== undefined && holder !== name) throw new PaeneError('exists', `${this.describe(key)} is already used by context '${holder}'`);
    this.write(key, name, false);
  }

  /** Gives `key` back if `name` holds it. Under the create lock, after the owner no longer says it. */
  release(name: string, key: string): void {
    if (this.ownerOf(key) === name) fs.rmSync(this.file(key), { force: true });
  }

  /** The keys `name` holds, by scanning the claims (for a context whose config cannot be read). */
  findByName(name: string): string[] {
    if (!fs.existsSync(this.dir)) return [];
    return fs.readdirSync(this.dir).filter((k) => this.ownerOf(k) === name);
  }
}
