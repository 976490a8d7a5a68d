import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withLock } from '../../src/runtime/lock.js';
import { EMPTY_STALE_MS } from '../../src/kernel/filelock.js';
import { acquireStoreLock } from '../../src/image/lock.js';
import { writeJsonAtomic } from '../../src/kernel/atomic.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-lock-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('withLock', () => {
  it('serializes concurrent holders', async () => {
    const file = path.join(dir, 'x.lock');
    const events: string[] = [];
    const job = (id: string) =>
      withLock(file, { what: 'x' }, async () => {
        events.push(`in ${id}`);
        await new Promise((r) => setTimeout(r, 20));
        events.push(`out ${id}`);
      });
    await Promise.all([job('a'), job('b'), job('c')]);
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i].slice(3)).toBe(events[i + 1].slice(4)); // never interleaved
    }
    expect(fs.existsSync(file)).toBe(false);
  });

  it('takes over a lock whose holder has died', async () => {
    const file = path.join(dir, 'x.lock');
    fs.writeFileSync(file, '999999999 12345\n'); // no such pid
    const got = await withLock(file, { what: 'x', timeoutMs: 2000 }, async () => 'ran');
    expect(got).toBe('ran');
  });

  it('takes over a lock of a reused pid (same pid, other start time)', async () => {
    const file = path.join(dir, 'x.lock');
    fs.writeFileSync(file, `${process.pid} 1\n`);
    expect(await withLock(file, { what: 'x', timeoutMs: 2000 }, async () => 'ran')).toBe('ran');
  });

  it('reports busy with the holder while a live process holds it', async () => {
    const file = path.join(dir, 'x.lock');
    let release = () => {};
    const held = withLock(file, { what: "context 'web'" }, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 10));
    await expect(withLock(file, { what: "context 'web'", timeoutMs: 100 }, async () => undefined)).rejects.toThrow(
      new RegExp(`another paene is working on context 'web' \\(pid ${process.pid}\\)`),
    );
    release();
    await held;
  });

  it('takes over an empty lock file once it is older than a holder needs to write its pid, not before', async () => {
    const file = path.join(dir, 'x.lock');
    fs.writeFileSync(file, ''); // its holder died between create and write
    await expect(withLock(file, { what: 'x', timeoutMs: 150 }, async () => 'ran')).rejects.toThrow(/another paene is working on x/);
    const old = (Date.now() - EMPTY_STALE_MS - 1000) / 1000;
    fs.utimesSync(file, old, old);
    expect(await withLock(file, { what: 'x', timeoutMs: 2000 }, async () => 'ran')).toBe('ran');
  });

  it('the image store lock is the same lock: a store held by a live pid is busy, by a dead one taken over', async () => {
    const file = path.join(dir, 'store.lock');
    fs.writeFileSync(file, '999999999\n'); // an older paene's format: the pid alone
    const l = await acquireStoreLock(file, 2000);
    await expect(acquireStoreLock(file, 100)).rejects.toThrow(new RegExp(`locked by another paene \\(pid ${process.pid}`));
    l.release();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('releases the lock when the work throws', async () => {
    const file = path.join(dir, 'x.lock');
    await expect(withLock(file, { what: 'x' }, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('writeJsonAtomic', () => {
  it('replaces the file whole and leaves no temporary behind', () => {
    const file = path.join(dir, 'state.json');
    writeJsonAtomic(file, { a: 1 });
    writeJsonAtomic(file, { a: 2 });
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ a: 2 });
    expect(fs.readdirSync(dir)).toEqual(['state.json']);
  });
});
