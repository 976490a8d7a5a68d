// Address claims (runtime/claims.ts, as the runtime uses them) and the network's
// assignment read through them: no root needed, no config read per context.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatIPv4 } from '../../src/net/bridgeplan.js';
import { ipv4Number } from '../../src/net/model.js';
import { type ContextConfig, newConfig } from '../../src/context/config.js';
import { ContextNetwork, keepRootOffEgress } from '../../src/runtime/network.js';
import { type Claims, addressClaims } from '../../src/runtime/claims.js';
import { Layout } from '../../src/kernel/layout.js';
import { StateStore } from '../../src/runtime/state.js';

let root: string;
let store: StateStore;
let addrs: Claims;
let net: ContextNetwork;

function context(name: string, addresses: string[]): ContextConfig {
  const c = newConfig({ name, xid: 2, image: 'base', net: { mode: 'shared', addresses, publish: [] } });
  fs.mkdirSync(store.layout.contextDir(name), { recursive: true });
  fs.writeFileSync(store.layout.configFile(name), JSON.stringify(c));
  return c;
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-addrs-'));
  keepRootOffEgress(root); // the 127.x pool: no egress pool picked (nor claimed host-wide) by a unit test
  const layout = new Layout(root);
  store = new StateStore(layout);
  addrs = addressClaims(store);
  net = new ContextNetwork(layout, store);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('address claims', () => {
  it('are built once from an older root, and refuse an address another context holds', () => {
    context('a', ['127.77.0.9']);
    expect(() => net.assign('b', { mode: 'shared', addresses: ['127.77.0.9'], publish: [] }, addrs)).toThrow(
      /127.77.0.9 is already owned by context 'a'/,
    );
    expect(addrs.ownerOf('127.77.0.9')).toBe('a');
    // its own address is no clash (a change of its own addresses)
    expect(net.assign('a', { mode: 'shared', addresses: ['127.77.0.9'], publish: [] }, addrs).addresses).toEqual(['127.77.0.9']);
  });

  it('fill in the lowest free pool address, past the claimed ones and the reserved first one', () => {
    const prefix = net.settings().sharedPool4.split('.').slice(0, 3).join('.'); // this root's pool, e.g. 127.110.0
    addrs.claim('a', `${prefix}.2`);
    addrs.claim('b', `${prefix}.3`);
    const got = net.assign('c', { mode: 'shared', addresses: [], publish: [] }, addrs);
    expect(got.addresses).toEqual([`${prefix}.4`]);
  });

  it('retake a stale claim (its owner no longer says it), refuse a held one', () => {
    addrs.claim('ghost', '127.77.0.5'); // a create that crashed before publishing
    addrs.claim('b', '127.77.0.5');
    expect(addrs.ownerOf('127.77.0.5')).toBe('b');
    context('c', ['127.77.0.6']);
    addrs.claim('c', '127.77.0.6');
    expect(() => addrs.claim('d', '127.77.0.6')).toThrow(/address 127.77.0.6 is already used by context 'c'/);
    addrs.release('d', '127.77.0.6'); // not its own: nothing happens
    expect(addrs.ownerOf('127.77.0.6')).toBe('c');
    expect(addrs.findByName('c')).toEqual(['127.77.0.6']);
  });

  it('find the lowest free key from a hint, lowered by a release, and survive a broken hint', () => {
    // ranges are numbers as the claims read their keys back (ipv4Number), as the pool's are
    const base = ipv4Number('127.9.0.0') as number;
    const key = (n: number) => formatIPv4(n);
    const claim = (who: string, skip: number[] = []) => addrs.claimLowest(who, base + 2, base + 5, key, new Set(skip.map((x) => base + x)));
    expect(claim('a')).toBe('127.9.0.2');
    expect(claim('b', [3])).toBe('127.9.0.4');
    addrs.release('a', '127.9.0.2');
    expect(claim('c')).toBe('127.9.0.2');
    fs.writeFileSync(path.join(addrs.dir, '.hints'), '{torn');
    expect(claim('d')).toBe('127.9.0.3');
    expect(claim('e')).toBe('127.9.0.5');
    expect(claim('f')).toBeUndefined();
    expect(addrs.keys()).not.toContain('.hints');
  });
});
