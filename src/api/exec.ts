// The API's exec (POST /v1/contexts/NAME/exec): a command run in a running
// context, its output collected, and its `timeout` ending the command inside
// the context, not only the host's side of it. Killing the helper that
// entered the context is not enough: the command and what it started (a
// `sleep 15 &`) live on in the context's pid namespace, hold the output
// pipes open and keep the answer waiting. Each exec's processes carry a
// mark of their own in their environment (PAENE_EXEC, inherited by what
// they start); at the timeout every process of the context's cgroup with
// that mark is killed, a few rounds so a fork in between goes too. A process
// that clears its environment on purpose escapes the mark, and is then cut
// off from the answer: its pipes are closed a moment later.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
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

/** The variable that marks an exec's processes. */
export const EXEC_MARK = 'PAENE_EXEC';

export async function execWithTimeout(rt: Runtime, name: string, x: ApiExec): Promise<ApiExecResult> {
  const mark = randomBytes(8).toString('hex');
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const run = rt.execCapture(name, x.argv, {
    user: x.user,
    cwd: x.cwd,
    input: x.input,
    env: { ...x.env, [EXEC_MARK]: mark },
  });
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, x.timeoutMs);
  });
  try {
    const first = await Promise.race([run, expired]);
    if (first) return first;
    await killMarked(rt, name, mark);
    // what escaped the mark (its environment cleared) may still hold the pipes: the answer does not wait for it
    const late = await Promise.race([run, sleep(1000).then(() => undefined)]);
    const r = late ?? { code: 137, stdout: '', stderr: '' };
    return { ...r, timedOut };
  } finally {
    if (timer) clearTimeout(timer);
    if (timedOut) run.catch(() => undefined);
  }
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
