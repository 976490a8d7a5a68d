// The API's exec (POST /v1/contexts/NAME/exec): a command run in a running
// context, its output collected, and its `timeout` ending the command inside
// the context, not only the host's side of it. Killing the helper that
// entered the context is not enough: the command and what it started (a
// `sleep 15 &`) live on in the context's pid namespace, hold the output
// pipes open and keep the answer waiting.
//
// Each exec's processes join a cgroup of their own, a child of the
// context's unified (v2) group (`paene-exec-ID`): the membership is the
// kernel's, kept across fork, setsid, a cleared environment and a reparent
// to the context's init, and a process in the context cannot leave it (it
// has no cgroup filesystem to write and no CAP_SYS_ADMIN). At the timeout
// every member is killed (cgroup.kill, or SIGKILL rounds until none is
// left); an exec that ends in time hands what it left running (a daemon it
// started) back to the context's group. Either way the child group is
// removed before the answer. The limits stay the context's: a child group
// is under them. A host without a unified hierarchy falls back to a mark in
// the environment (PAENE_EXEC), which a process that clears its environment
// escapes (docs/api.md).

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoOf } from '../model/errors.js';
import type { ExecOptions, Runtime } from '../runtime/runtime.js';

export interface ApiExec {
  argv: string[];
  /** ids, or UID[:GID] / NAME[:GROUP] of the context's /etc/passwd and /etc/group */
  user?: ExecOptions['user'];
  env?: Record<string, string>;
  cwd?: string;
  input?: string;
  timeoutMs: number;
}

export interface ApiExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** the timeout ended it (its processes in the context were killed) */
  timedOut?: boolean;
}

/** The variable that marks an exec's processes where there is no unified cgroup. */
export const EXEC_MARK = 'PAENE_EXEC';
/** The prefix of an exec's child cgroup. */
export const EXEC_GROUP_PREFIX = 'paene-exec-';

export async function execWithTimeout(rt: Runtime, name: string, x: ApiExec): Promise<ApiExecResult> {
  const id = randomBytes(8).toString('hex');
  const group = ExecGroup.make(rt, name, id);
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  let run: Promise<ApiExecResult> | undefined;
  try {
    run = rt.execCapture(name, x.argv, {
      user: x.user,
      cwd: x.cwd,
      input: x.input,
      env: group ? x.env : { ...x.env, [EXEC_MARK]: id },
      ...(group ? { cgroupLeaf: group.leaf } : {}),
    });
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        timedOut = true;
        resolve();
      }, x.timeoutMs);
    });
    const first = await Promise.race([run, expired]);
    if (first) return first;
    if (group) await group.kill();
    else await killMarked(rt, name, id);
    // (without a group) what escaped the mark may still hold the pipes: the answer does not wait for it
    const late = await Promise.race([run, sleep(group ? 5000 : 1000).then(() => undefined)]);
    const r = late ?? { code: 137, stdout: '', stderr: '' };
    return { ...r, timedOut };
  } finally {
    if (timer) clearTimeout(timer);
    run?.catch(() => undefined);
    await group?.release();
  }
}

/** One exec's child cgroup in the context's unified group. */
export class ExecGroup {
  private constructor(
    readonly parent: string,
    readonly leaf: string,
  ) {}

  get dir(): string {
    return path.join(this.parent, this.leaf);
  }

  /** Makes it; undefined where the context has no unified group (a v1-only host). */
  static make(rt: Runtime, name: string, id: string): ExecGroup | undefined {
    const parent = rt.cgroupOf(name).unifiedDir;
    if (!parent || !fs.existsSync(parent)) return undefined;
    const g = new ExecGroup(parent, `${EXEC_GROUP_PREFIX}${id}`);
    fs.mkdirSync(g.dir);
    return g;
  }

  /** Kills every member, until none is left (a fork in between goes in the next round). */
  async kill(): Promise<void> {
    await killGroup(this.dir);
  }

  /** Hands what is left running back to the context's group and removes this one. */
  async release(): Promise<void> {
    await releaseGroup(this.parent, this.dir);
  }
}

function readPids(dir: string): number[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
}

async function killGroup(dir: string): Promise<void> {
  const killFile = path.join(dir, 'cgroup.kill');
  for (let round = 0; round < 500; round++) {
    const pids = readPids(dir);
    if (pids.length === 0) return;
    if (fs.existsSync(killFile)) fs.writeFileSync(killFile, '1');
    else
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone meanwhile */
        }
      }
    await sleep(10);
  }
}

/** Moves the members to `parent` until none is left, then removes the group (a last task may still be exiting). */
async function releaseGroup(parent: string, dir: string): Promise<void> {
  for (let round = 0; round < 500; round++) {
    const pids = readPids(dir);
    for (const pid of pids) {
      try {
        fs.writeFileSync(path.join(parent, 'cgroup.procs'), String(pid));
      } catch {
        /* exited meanwhile */
      }
    }
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      const code = errnoOf(e);
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw e;
    }
    await sleep(10);
  }
}

/**
 * Exec groups a service that died left behind (`paene serve` runs it as it
 * starts): their processes handed back to their context, the groups removed,
 * so a context's own group can be removed when it stops.
 */
export async function releaseStaleGroups(rt: Runtime): Promise<number> {
  let n = 0;
  for (const name of rt.store.names()) {
    const parent = rt.cgroupOf(name).unifiedDir;
    if (!parent) continue;
    let entries: string[];
    try {
      entries = fs.readdirSync(parent);
    } catch {
      continue;
    }
    for (const e of entries.filter((x) => x.startsWith(EXEC_GROUP_PREFIX))) {
      await releaseGroup(parent, path.join(parent, e));
      n++;
    }
  }
  return n;
}

/** Kills the processes of the context that carry this exec's mark, until none is left (a few rounds). */
export async function killMarked(rt: Runtime, name: string, mark: string): Promise<number> {
  const needle = Buffer.from(`\0${EXEC_MARK}=${mark}\0`);
  let killed = 0;
  for (let round = 0; round < 20; round++) {
    const marked = rt
      .cgroupOf(name)
      .pids()
      .filter((pid) => {
        try {
          // a leading NUL so the first variable matches too
          return Buffer.concat([Buffer.from([0]), fs.readFileSync(`/proc/${pid}/environ`)]).includes(needle);
        } catch {
          return false; // gone already
        }
      });
    if (marked.length === 0) return killed;
    for (const pid of marked) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        /* gone meanwhile */
      }
    }
    await sleep(20);
  }
  return killed;
}
