// The host-wide registry of network names (src/net/registry.ts) in a
// directory of the test's own: claims, refusal by owner, stale claims
// retaken, release only by the owner.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostRegistry, type Owner, ownerText, scopeOf } from '../../src/net/registry.js';

let dir: string;
let alive: Set<string>;
const key = (o: Owner) => `${o.name ?? ''}@${o.root}`;
let reg: HostRegistry;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-registry-'));
  alive = new Set();
  reg = HostRegistry.forNetns(undefined, (_k, _key, o) => alive.has(key(o)), dir);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('host registry', () => {
  const a: Owner = { root: '/srv/a', name: 'db' };
  const c: Owner = { root: '/srv/c', name: 'thief' };

  it('is scoped by network namespace', () => {
    expect(reg.dir).toBe(path.join(dir, scopeOf('/proc/self/ns/net')));
    expect(scopeOf()).toMatch(/^ns-\d+-\d+$/);
  });

  it("refuses a live owner's key and names it; retakes a stale one", () => {
    reg.locked(() => expect(reg.claim('addr', '127.167.0.3', a)).toBeUndefined());
    alive.add(key(a));
    expect(reg.locked(() => reg.claim('addr', '127.167.0.3', c))).toEqual(a);
    expect(ownerText(a)).toBe("context 'db' of state root /srv/a");
    expect(reg.otherHolder('addr', '127.167.0.3', a)).toBeUndefined(); // its own
    alive.delete(key(a)); // root A gone: the claim is stale
    expect(reg.locked(() => reg.claim('addr', '127.167.0.3', c))).toBeUndefined();
    expect(reg.ownerOf('addr', '127.167.0.3')).toEqual(c);
  });

  it('releases only for its owner; subnets keep their slash; prune leaves nothing behind', () => {
    const root: Owner = { root: '/srv/b' };
    alive.add(key(root));
    reg.locked(() => {
      reg.claim('subnet', '10.89.0.0/16', root);
      reg.claim('bridge', 'paene1', root);
    });
    expect(reg.locked(() => reg.live('subnet'))).toEqual(new Map([['10.89.0.0/16', root]]));
    expect(
      reg
        .ownedBy('/srv/b')
        .map((x) => `${x.kind} ${x.key}`)
        .sort(),
    ).toEqual(['bridge paene1', 'subnet 10.89.0.0/16']);
    reg.locked(() => reg.release('bridge', 'paene1', { root: '/srv/x' }));
    expect(reg.ownerOf('bridge', 'paene1')).toEqual(root);
    reg.locked(() => {
      reg.release('bridge', 'paene1', root);
      reg.release('subnet', '10.89.0.0/16', root);
    });
    expect(reg.ownedBy('/srv/b')).toEqual([]);
    reg.prune();
    expect(fs.existsSync(reg.dir)).toBe(false);
  });

  it('a claim made under the lock may claim again (re-entered, not deadlocked)', () => {
    reg.locked(() => reg.locked(() => reg.claim('table', 'paene1', { root: '/srv/b' })));
    expect(reg.ownerOf('table', 'paene1')).toEqual({ root: '/srv/b' });
  });
});
