// The xid claims (runtime/xids.ts) on a plain directory: no root needed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newConfig } from '../../src/context/config.js';
import { Layout } from '../../src/kernel/layout.js';
import { StateStore } from '../../src/runtime/state.js';
import { XidClaims } from '../../src/runtime/xids.js';

let root: string;
let store: StateStore;
let xids: XidClaims;

/** A context on disk as create leaves it (config only). */
function context(name: string, xid: number): void {
  fs.mkdirSync(store.layout.contextDir(name), { recursive: true });
  fs.writeFileSync(store.layout.configFile(name), JSON.stringify(newConfig({ name, xid, image: 'base' })));
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-xids-'));
  store = new StateStore(new Layout(root));
  xids = new XidClaims(store);
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('xid claims', () => {
  it('hands out the lowest free xid and records its owner', () => {
    expect(xids.claim('a')).toBe(2);
    expect(xids.claim('b')).toBe(3);
    expect(xids.claim('c', 10)).toBe(10);
    expect(xids.claim('d')).toBe(4);
    expect(xids.ownerOf(3)).toBe('b');
    xids.release('b', 3);
    expect(xids.claim('e')).toBe(3);
  });

  it('refuses an xid a context really holds, naming it', () => {
    context('a', 7);
    xids.ensure();
    expect(() => xids.claim('b', 7)).toThrow(/xid 7 is already used by context 'a'/);
    expect(xids.ownerOf(7)).toBe('a');
  });

  it('retakes a stale claim (its owner never got published) when asked for by number', () => {
    xids.claim('ghost', 9); // a create that crashed before its context was published
    expect(xids.claim('b', 9)).toBe(9);
    expect(xids.ownerOf(9)).toBe('b');
  });

  it('gives back only its own claim', () => {
    xids.claim('a', 5);
    xids.release('b', 5);
    expect(xids.ownerOf(5)).toBe('a');
    expect(xids.findByName('a')).toBe(5);
  });

  it('builds the claims of a root made before them from the configs, once', () => {
    context('old1', 2);
    context('old2', 40);
    fs.mkdirSync(store.layout.contextDir('broken'), { recursive: true });
    fs.writeFileSync(store.layout.configFile('broken'), '{');
    expect(xids.claim('new')).toBe(3);
    expect(xids.ownerOf(2)).toBe('old1');
    expect(xids.ownerOf(40)).toBe('old2');
    expect(() => xids.claim('x', 40)).toThrow(/used by context 'old2'/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('xids.building'))).toEqual([]);
  });
});
