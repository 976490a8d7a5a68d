// Which xid belongs to which context: claims (runtime/claims.ts) named after
// the xid, ROOT/xids/<xid>. `create` reads the directory's names to find the
// lowest free xid, so its cost does not grow with the number of contexts.

import { PaeneError } from '../model/errors.js';
import { XID_MAX, XID_MIN } from '../context/config.js';
import { Claims } from './claims.js';
import type { StateStore } from './state.js';

export class XidClaims {
  private readonly claims: Claims;
  constructor(store: StateStore) {
    this.claims = new Claims(
      store,
      'xids',
      (c) => [String(c.xid)],
      (k) => `xid ${k}`,
      (k) => (/^\d+$/.test(k) ? Number(k) : undefined),
    );
  }

  get dir(): string {
    return this.claims.dir;
  }

  ensure(): void {
    this.claims.ensure();
  }

  /** See Claims.batch: the lowest-free hint written once per hold of the create lock. */
  batch<T>(fn: () => Promise<T>): Promise<T> {
    return this.claims.batch(fn);
  }

  ownerOf(xid: number): string | undefined {
    return this.claims.ownerOf(String(xid));
  }

  /** Claims `xid` (or the lowest free one) for `name`. Under the create lock. */
  claim(name: string, xid?: number): number {
    if (xid !== undefined) {
      this.claims.claim(name, String(xid));
      return xid;
    }
    const x = this.claims.claimLowest(name, XID_MIN, XID_MAX, String);
    if (x === undefined) throw new PaeneError('exists', `no free xid left in ${XID_MIN}-${XID_MAX}`);
    return Number(x);
  }

  release(name: string, xid: number): void {
    this.claims.release(name, String(xid));
  }

  /** The xid `name` holds, by scanning the claims (for a context whose config cannot be read). */
  findByName(name: string): number | undefined {
    const [k] = this.claims.findByName(name);
    if (k === undefined) return undefined;
    const x = Number(k);
    if (!Number.isInteger(x)) throw new PaeneError('internal', `a stray xid claim: ${k}`);
    return x;
  }
}
