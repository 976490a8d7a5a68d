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
import { PaeneError, errnoOf } from '../model/errors.js';
import { ipv4Number } from '../net/model.js';
import { type HostRegistry, type Owner, ownerText } from '../net/registry.js';
import type { ContextConfig } from '../context/config.js';
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
    /** a key as a number, for keys handed out lowest first (xids, IPv4 addresses); undefined for others */
    private readonly numberOf: (key: string) => number | undefined = () => undefined,
  ) {
    this.dir = path.join(store.layout.root, kind);
  }

  private file(key: string): string {
    if (!key || key.includes('/') || key.startsWith('.')) throw new PaeneError('internal', `not a claim key: '${key}'`);
    return path.join(this.dir, key);
  }

  /** Hints held in memory while a batch of claims runs under one hold of the create lock (written once at its end). */
  private pendingHints?: { hints: Record<string, number>; changed: boolean };
  private ensured = false;

  /** The claims directory, built from the configs if this root predates it. Under the create lock. */
  ensure(): void {
    if (this.ensured) return;
    if (fs.existsSync(this.dir)) {
      this.ensured = true;
      return;
    }
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
    this.ensured = true;
  }

  /**
   * Runs `fn` (claims and releases, all under one hold of the create lock)
   * with the hints kept in memory and written once at the end: a write per
   * claim was a third of a create. A crash before the write leaves the older
   * hint, which is still true (lower only: it costs a scan past taken keys).
   */
  async batch<T>(fn: () => Promise<T>): Promise<T> {
    if (this.pendingHints) return fn();
    this.pendingHints = { hints: this.readHintsFile(), changed: false };
    try {
      return await fn();
    } finally {
      const p = this.pendingHints;
      this.pendingHints = undefined;
      if (p.changed) this.writeHintsFile(p.hints);
    }
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
      const config = this.store.readConfigIfAny(owner); // not readConfig: its not-found message lists every context
      return config !== undefined && this.keysOf(config).includes(key);
    } catch {
      return false;
    }
  }

  /** Every key claimed (stale ones too: a crash's leftovers only leave gaps). */
  keys(): string[] {
    this.ensure();
    return fs.readdirSync(this.dir).filter((f) => !f.startsWith('.') && !f.endsWith('.tmp'));
  }

  /**
   * Claims the lowest free key of [first, last] (as numbers) for `name`;
   * undefined when none is free. A hint per range, the lowest key that may be
   * free (ROOT/<kind>/.hints), spares reading the whole directory: below it
   * every key is claimed, because a claim moves it up only past keys it
   * found taken and a release moves it down. A lost or broken hint costs one
   * scan from `first`. Under the create lock.
   */
  claimLowest(
    name: string,
    first: number,
    last: number,
    keyOf: (n: number) => string,
    skip: ReadonlySet<number> = new Set(),
  ): string | undefined {
    this.ensure();
    const hints = this.readHints();
    const range = `${first}-${last}`;
    for (let n = Math.max(first, hints[range] ?? first); n <= last; n++) {
      if (skip.has(n)) continue;
      const key = keyOf(n);
      if (!this.tryClaim(name, key)) continue;
      this.writeHints({ ...hints, [range]: n + 1 });
      return key;
    }
    return undefined;
  }

  private get hintsFile(): string {
    return path.join(this.dir, '.hints');
  }

  private readHints(): Record<string, number> {
    return this.pendingHints ? { ...this.pendingHints.hints } : this.readHintsFile();
  }

  private writeHints(h: Record<string, number>): void {
    if (this.pendingHints) this.pendingHints = { hints: h, changed: true };
    else this.writeHintsFile(h);
  }

  private readHintsFile(): Record<string, number> {
    try {
      const h = JSON.parse(fs.readFileSync(this.hintsFile, 'utf8')) as unknown;
      if (h && typeof h === 'object' && Object.values(h).every((v) => Number.isInteger(v))) return h as Record<string, number>;
    } catch {
      /* none yet, or torn: scan from the start */
    }
    return {};
  }

  private writeHintsFile(h: Record<string, number>): void {
    const tmp = `${this.hintsFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(h));
    fs.renameSync(tmp, this.hintsFile);
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
    if (this.tryClaim(name, key) || this.ownerOf(key) === name) return; // its own already (claimLowest took it)
    const holder = this.holder(key);
    if (holder !== undefined && holder !== name)
      throw new PaeneError('exists', `${this.describe(key)} is already used by context '${holder}'`);
    this.write(key, name, false);
  }

  /** Gives `key` back if `name` holds it. Under the create lock, after the owner no longer says it. */
  release(name: string, key: string): void {
    if (this.ownerOf(key) !== name) return;
    fs.rmSync(this.file(key), { force: true });
    // the freed key may now be the lowest free one of its range
    const n = this.numberOf(key);
    if (n === undefined) return;
    const hints = this.readHints();
    let changed = false;
    for (const [range, lowest] of Object.entries(hints)) {
      const [first, last] = range.split('-').map(Number);
      if (n >= first && n <= last && n < lowest) {
        hints[range] = n;
        changed = true;
      }
    }
    if (changed) this.writeHints(hints);
  }

  /** The keys `name` holds, by scanning the claims (for a context whose config cannot be read). */
  findByName(name: string): string[] {
    if (!fs.existsSync(this.dir)) return [];
    return this.keys().filter((k) => this.ownerOf(k) === name);
  }
}

/** The claims of addresses, ROOT/addrs/ADDR: IPv4 ones handed out lowest first from a pool. */
export function addressClaims(store: StateStore): Claims {
  return new Claims(
    store,
    'addrs',
    (c) => c.net.addresses,
    (a) => `address ${a}`,
    ipv4Number,
  );
}

/**
 * The runtime's address claims, seen host-wide: an address claimed here is
 * also claimed in the host's registry (net/registry.ts, under its lock, the
 * root's own claim made first), so no other state root hands it out or
 * accepts it; one claimed by a context of another root is skipped by the
 * pool and refused by name. Addresses in the root's own private subnet stay
 * local (`registryOf` gives undefined): the subnet itself is the root's alone.
 */
export class HostAddressClaims extends Claims {
  constructor(
    store: StateStore,
    private readonly registryOf: (address: string) => HostRegistry | undefined,
  ) {
    super(
      store,
      'addrs',
      (c) => c.net.addresses,
      (a) => `address ${a}`,
      ipv4Number,
    );
  }

  private me(name: string): Owner {
    return { root: this.store.layout.root, name };
  }

  /** The owner, in words, of `address` when a context of another state root holds it. */
  elsewhere(address: string): string | undefined {
    const reg = this.registryOf(address);
    if (!reg) return undefined;
    const o = reg.locked(() => reg.otherHolder('addr', address, { root: this.store.layout.root }));
    return o !== undefined && o.root !== this.store.layout.root ? ownerText(o) : undefined;
  }

  override tryClaim(name: string, key: string): boolean {
    const reg = this.registryOf(key);
    if (!reg) return super.tryClaim(name, key);
    return reg.locked(() => {
      const o = reg.otherHolder('addr', key, this.me(name));
      if (o !== undefined && o.root !== this.store.layout.root) return false;
      if (!super.tryClaim(name, key)) return false;
      reg.claim('addr', key, this.me(name));
      return true;
    });
  }

  override claim(name: string, key: string): void {
    const reg = this.registryOf(key);
    if (!reg) return super.claim(name, key);
    reg.locked(() => {
      const o = reg.otherHolder('addr', key, this.me(name));
      if (o !== undefined && o.root !== this.store.layout.root)
        throw new PaeneError('exists', `address ${key} is already used by ${ownerText(o)}`);
      super.claim(name, key);
      reg.claim('addr', key, this.me(name));
    });
  }

  override release(name: string, key: string): void {
    super.release(name, key);
    const reg = this.registryOf(key);
    if (reg) reg.locked(() => reg.release('addr', key, this.me(name)));
  }
}

export function hostAddressClaims(store: StateStore, network: { addressRegistry(address: string): HostRegistry | undefined }): Claims {
  return new HostAddressClaims(store, (a) => network.addressRegistry(a));
}
