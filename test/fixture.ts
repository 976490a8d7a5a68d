// The runtime fixture of the real-kernel tests: one Runtime on a state root
// of its own, made before the tests of the describe() that calls it and
// taken apart after them, also when a test or the set-up failed.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ensureBaseImage } from '../src/image/base.js';
import { Layout } from '../src/kernel/layout.js';
import { openImageStore, openRuntime } from '../src/runtime/open.js';
import type { Runtime } from '../src/runtime/runtime.js';
import { disposeRuntime, tempRoot } from './helpers.js';

export interface RuntimeFixture {
  /** the runtime (from the first hook on) */
  readonly rt: Runtime;
  /** its state root, /tmp/paene-test-TAG-XXXXXX (its cgroups get a `paene-<hash>` parent) */
  readonly root: string;
}

export interface FixtureTimeouts {
  /** the set-up's hook (ms): the root, the runtime and `setup` (default 180 s: a first start builds the base image) */
  setup?: number;
  /** the clean-up's hook (ms; default 120 s) */
  dispose?: number;
}

/** The environment variable that names the run's cache directory (named by vitest.config.ts, made here, removed when the run ends). */
export const TEST_CACHE_ENV = 'PAENE_TEST_CACHE';

/**
 * Puts the base image into a new state root's image store: built once a run, by the first fixture that
 * needs it, into the run's cache (ensureBaseImage under the cache store's lock: a second worker waits for
 * it and finds it built), then copied (cp -a: a copy of its own, so nothing a test does to its store
 * reaches another's). About 0.3 s instead of 1.1 s of CPU (2.8 s before 2e5dca8) for each of some thirty roots. Without the cache
 * (a run not started by vitest.config.ts), the root's first start builds it, as a user's does.
 */
export async function seedBaseImage(root: string): Promise<void> {
  const cache = process.env[TEST_CACHE_ENV];
  if (!cache) return;
  fs.mkdirSync(cache, { recursive: true, mode: 0o700 });
  await ensureBaseImage(openImageStore(cache));
  const from = new Layout(cache).imagesDir;
  const to = new Layout(root).imagesDir;
  fs.mkdirSync(to, { recursive: true });
  const r = spawnSync('cp', ['-a', `${from}/.`, `${to}/`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`copying the run's base image into ${to}: ${r.stderr || r.signal}`);
}

/**
 * Registers the hooks of a runtime for the enclosing describe(): before its
 * tests, a state root (tempRoot(tag)) with the run's base image in its store
 * (seedBaseImage), the runtime opened on it and then
 * `setup` (contexts to create and start, ...); after them, every context
 * destroyed, the monitor stopped and the root removed (disposeRuntime), also
 * when the set-up or a test failed. vitest runs afterAll hooks in reverse,
 * so a file's own afterAll registered after this one (a server on the
 * runtime, ...) runs before the runtime goes.
 */
export function useRuntime(tag: string, setup?: () => void | Promise<void>, timeouts: FixtureTimeouts = {}): RuntimeFixture {
  let root: string | undefined;
  let rt: Runtime | undefined;
  beforeAll(async () => {
    root = tempRoot(tag);
    await seedBaseImage(root);
    rt = openRuntime(root);
    await setup?.();
  }, timeouts.setup ?? 180_000);
  afterAll(async () => {
    const [r, d] = [rt, root];
    rt = root = undefined;
    await disposeRuntime(r, d);
  }, timeouts.dispose ?? 120_000);
  const made = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`the runtime fixture '${tag}': ${what} is used outside the describe's tests`);
    return v;
  };
  return {
    get rt() {
      return made(rt, 'rt');
    },
    get root() {
      return made(root, 'root');
    },
  };
}

/** A scratch directory on the host for the enclosing describe(): /tmp/paene-test-TAG-XXXXXX, made before its tests, removed after them. */
export function useHostDir(tag: string): { readonly dir: string } {
  let dir: string | undefined;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `paene-test-${tag}-`));
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return {
    get dir() {
      if (dir === undefined) throw new Error(`the host directory '${tag}' is used outside the describe's tests`);
      return dir;
    },
  };
}

/**
 * A context's main-process log (its main.log under the state root) as text, '' before it exists. Carriage
 * returns are dropped: a guest init writes its console lines as a terminal's (\r...\r\n); the log keeps the
 * bytes, the checks look past them.
 */
export function mainLog(root: string, name: string): string {
  try {
    return fs.readFileSync(path.join(root, 'contexts', name, 'log', 'main.log'), 'utf8').replace(/\r/g, '');
  } catch {
    return '';
  }
}

/** Polls the context's main log until it matches re; its text. The bound is generous (a loaded machine is slow, never wrong). */
export async function waitMainLog(root: string, name: string, re: RegExp, ms = 120_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const t = mainLog(root, name);
    if (re.test(t)) return t;
    if (Date.now() > end) throw new Error(`log of ${name} never matched ${re} in ${ms / 1000} s:\n${t.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
