// Talks to the native helper (src/native/paene-helper.c): the per-root
// monitor that forks context inits, and `exec` into a running context.

import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PaeneError } from '../model/errors.js';
import type { BindMount } from '../model/mounts.js';
import { nativePath } from './package.js';
import { EXEC_PLAN } from '../proto/exec-plan.js';
import { HELPER_REQUEST } from '../proto/helper-request.js';
import { HELPER_ERRORS } from '../proto/helper-reply.js';
import { INIT_PLAN, LOG_PLAN, MAIN_FDS } from '../proto/main-process.js';
import { encodeMessage, flagArgs, parseReply, type Entry } from '../proto/tokens.js';

export { nativePath, packageRoot } from './package.js';

export function helperPath(): string {
  return nativePath('paene-helper');
}

/** Everything the start request carries; the helper executes it as given. */
export interface StartRequest {
  cgroupProcs: string[];
  lower: string;
  upper: string;
  work: string;
  rootfs: string;
  hostname: string;
  sysctls: Record<string, string>;
  masked: string[];
  readonly: string[];
  /** paths made writable again inside a read-only one (ccaps) */
  writable: string[];
  /** the context's dev/, shm/ and tmp/ in the scratch tmpfs */
  scratch: string;
  /** the empty directory bound over masked directories */
  empty: string;
  /** the program the init becomes once the context is set up (paene-init); absent: the helper stays the init */
  init?: string;
  /** the character devices made in its /dev */
  devices: readonly { path: string; major: number; minor: number; mode: number }[];
  capsMask: bigint;
  seccomp?: Buffer;
  /** 'new': the init gets a network namespace of its own (modes private and none) */
  netns?: 'new';
  /** bring that namespace's loopback up (mode none) */
  loUp?: boolean;
  /** sock_addr programs (TYPE=HEX, kernel/bpf.ts) attached to this cgroup v2 directory before the init joins it (mode shared) */
  sockAddr?: { cgroupDir: string; progs: string[] };
  /** Landlock scope bits for the context's domain (LANDLOCK_SCOPE_*); 0 or absent: no domain */
  landlockScoped?: number;
  /** scheduling policy and custom slice of the context's processes (its latency class); absent: the kernel's */
  sched?: Sched;
  /** a main process for the init to run and restart (with `log`) */
  main?: MainLaunch;
  /** the guest's own init as pid 1 instead of `init` (with `log`: its console) */
  guestInit?: { path: string; env: string[] };
  /** the log writer on the host: the main process's or the guest init's output */
  log?: LogLaunch;
  /** a tmpfs of this many bytes on /run (a guest init wants one) */
  runTmpfs?: number;
  /** bind mounts into the new root, in order (runtime/mounts.ts startBinds: checked and resolved there) */
  binds?: readonly BindMount[];
}

/** The main process as its init gets it (proto/main-process.ts INIT_PLAN): everything decided here. */
export interface MainLaunch {
  argv: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  restart: 'no' | 'on-failure' | 'always';
  /** on-failure: restarts before it gives up; 0: no bound */
  maxRestarts: number;
  backoff: { firstMs: number; maxMs: number; resetAfterMs: number };
}

/** paene-log as the helper starts it (LOG_PLAN). */
export interface LogLaunch {
  prog: string;
  dir: string;
  maxBytes: number;
  keep: number;
  /** the name of stdout's records: stdout, or console for a guest init (whose /dev/console is read too) */
  stream: 'stdout' | 'console';
}

/** paene-init's command line after its name (INIT_PLAN, then `--` and the command). */
export function initPlanWords(m: MainLaunch): string[] {
  const e: Entry[] = [
    ['--restart', m.restart],
    ['--max-restarts', String(m.maxRestarts)],
    ['--backoff', String(m.backoff.firstMs), String(m.backoff.maxMs), String(m.backoff.resetAfterMs)],
    ['--uid', String(m.uid)],
    ['--gid', String(m.gid)],
    ['--cwd', m.cwd],
  ];
  return [...flagArgs(INIT_PLAN, e), '--', ...m.argv];
}

/** paene-log's command line after its name (LOG_PLAN). */
export function logPlanWords(l: LogLaunch): string[] {
  const e: Entry[] = [
    ['--dir', l.dir],
    ['--max-bytes', String(l.maxBytes)],
    ['--keep', String(l.keep)],
    ['--stream', l.stream],
  ];
  if (l.stream === 'console') e.push(['--console']);
  return flagArgs(LOG_PLAN, e);
}

export interface Sched {
  policy: number;
  sliceNs: number;
}

const schedArg = (s: Sched) => `${s.policy}:${s.sliceNs}`;

/** LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (Linux 6.12, Landlock ABI 6). */
export const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1;

/** The start request as paene-helper reads it (proto/helper-request.ts): each flag checked against the message. */
export function startArgs(r: StartRequest): string[] {
  const e: Entry[] = [];
  for (const f of r.cgroupProcs) e.push(['--cgroup', f]);
  e.push(['--lower', r.lower], ['--upper', r.upper], ['--work', r.work], ['--rootfs', r.rootfs]);
  e.push(['--hostname', r.hostname], ['--scratch', r.scratch], ['--empty', r.empty], ['--caps', r.capsMask.toString(16)]);
  for (const d of r.devices) e.push(['--dev', `${d.path}:${d.major}:${d.minor}:${d.mode.toString(8)}`]);
  for (const [k, v] of Object.entries(r.sysctls)) e.push(['--sysctl', `${k}=${v}`]);
  for (const p of r.masked) e.push(['--mask', p]);
  for (const p of r.readonly) e.push(['--ro', p]);
  for (const p of r.writable) e.push(['--rw', p]);
  if (r.seccomp && r.seccomp.length > 0) e.push(['--seccomp', r.seccomp.toString('hex')]);
  if (r.netns) e.push(['--netns', r.netns]);
  if (r.loUp) e.push(['--lo-up']);
  if (r.sockAddr) {
    e.push(['--bpf-cgroup', r.sockAddr.cgroupDir]);
    for (const p of r.sockAddr.progs) e.push(['--bpf-prog', p]);
  }
  if (r.landlockScoped) e.push(['--landlock-scoped', r.landlockScoped.toString(16)]);
  if (r.sched) e.push(['--sched', schedArg(r.sched)]);
  if (r.init) e.push(['--init', r.init]);
  if (r.runTmpfs) e.push(['--run-tmpfs', String(r.runTmpfs)]);
  for (const b of r.binds ?? []) e.push(['--bind', b.source, b.target, b.readonly ? 'ro' : 'rw', b.kind]);
  const words = r.main ? initPlanWords(r.main) : [];
  const env = r.main?.env ?? r.guestInit?.env ?? [];
  if (words.length > MAIN_FDS.constants.INIT_WORDS_MAX || env.length > MAIN_FDS.constants.INIT_WORDS_MAX)
    throw new PaeneError(
      'invalid-argument',
      `the main process's command line and environment may have at most ${MAIN_FDS.constants.INIT_WORDS_MAX} words each (it has ${words.length} and ${env.length})`,
    );
  if (r.main) {
    for (const w of words) e.push(['--init-arg', w]);
    for (const v of r.main.env) e.push(['--init-env', v]);
  }
  if (r.guestInit) {
    e.push(['--guest-init', r.guestInit.path]);
    for (const v of r.guestInit.env) e.push(['--init-env', v]);
  }
  if (r.log) {
    e.push(['--log-prog', r.log.prog]);
    for (const w of logPlanWords(r.log)) e.push(['--log-arg', w]);
  }
  return ['start', ...flagArgs(HELPER_REQUEST, e)];
}

export interface ExecRequest {
  initPid: number;
  cgroupProcs: string[];
  capsMask: bigint;
  seccomp?: Buffer;
  env: string[];
  cwd?: string;
  user?: { uid: number; gid: number };
  tty?: boolean;
  /** an fd of the helper that gets 'ok PID' once the command runs, or 'err CODE MESSAGE' (HELPER_REQUEST's --started-fd) */
  startedFd?: number;
  /** 'join': enter the init's network namespace (modes private and none) */
  netns?: 'join';
  landlockScoped?: number;
  sched?: Sched;
  argv: string[];
}

export function execArgs(r: ExecRequest): string[] {
  const e: Entry[] = [
    ['--pid', String(r.initPid)],
    ['--caps', r.capsMask.toString(16)],
  ];
  for (const v of r.env) e.push(['--env', v]);
  if (r.cwd) e.push(['--cwd', r.cwd]);
  if (r.user) e.push(['--user', `${r.user.uid}:${r.user.gid}`]);
  if (r.tty) e.push(['--tty']);
  if (r.startedFd !== undefined) e.push(['--started-fd', String(r.startedFd)]);
  return ['exec', ...flagArgs(HELPER_REQUEST, [...e, ...wallEntries(r)]), '--', ...r.argv];
}

/** The walls every process entering the context gets: its cgroups, seccomp filter, network namespace, Landlock, scheduling. */
function wallEntries(r: Pick<ExecRequest, 'cgroupProcs' | 'seccomp' | 'netns' | 'landlockScoped' | 'sched'>): Entry[] {
  const e: Entry[] = [];
  for (const f of r.cgroupProcs) e.push(['--cgroup', f]);
  if (r.seccomp && r.seccomp.length > 0) e.push(['--seccomp', r.seccomp.toString('hex')]);
  if (r.netns) e.push(['--netns', r.netns]);
  if (r.landlockScoped) e.push(['--landlock-scoped', r.landlockScoped.toString(16)]);
  if (r.sched) e.push(['--sched', schedArg(r.sched)]);
  return e;
}

/**
 * A running context's exec plan (ROOT/contexts/NAME/exec.plan), read by the
 * native front door (src/native/paene-front.c) so `paene exec` need not boot
 * Node. Everything is decided here; the front door adds only what the call
 * names (command, --tty, --user, --cwd, --env) and picks the capability set
 * by user, as the runtime does. The message is proto/exec-plan.ts.
 */
export interface ExecPlan extends Pick<ExecRequest, 'cgroupProcs' | 'seccomp' | 'netns' | 'landlockScoped' | 'sched' | 'env'> {
  initPid: number;
  starttime: number;
  capsRoot: bigint;
  capsUser: bigint;
  term: string;
}

export function execPlanBytes(p: ExecPlan): Buffer {
  return encodeMessage(EXEC_PLAN, [
    ['version', '1'],
    ['pid', String(p.initPid)],
    ['starttime', String(p.starttime)],
    ['caps-root', p.capsRoot.toString(16)],
    ['caps-user', p.capsUser.toString(16)],
    ['term', p.term],
    ...p.env.map((e): Entry => ['env', e]),
    ...flagArgs(HELPER_REQUEST, wallEntries(p)).map((a): Entry => ['arg', a]),
  ]);
}

/** Sets the scheduling class of running processes (a live latency change); pids that exited are skipped. */
export function setSched(pids: number[], sched: Sched): void {
  if (pids.length === 0) return;
  const r = spawnSync(helperPath(), ['sched', schedArg(sched), ...pids.map(String)], { encoding: 'utf8', env: {} });
  if (r.status !== 0) throw new PaeneError('internal', `cannot set the scheduling class: ${r.stderr.trim()}`);
}

let landlockAbiCache: number | undefined;
/** The kernel's Landlock ABI version, 0 when Landlock is absent or disabled. */
export function landlockAbi(): number {
  if (landlockAbiCache === undefined) {
    const r = spawnSync(helperPath(), ['landlock-abi'], { encoding: 'utf8', env: {} });
    landlockAbiCache = r.status === 0 ? Number(r.stdout.trim()) || 0 : 0;
  }
  return landlockAbiCache;
}

/** A connection error that means no monitor listens (yet) on the socket. */
function isNotListening(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

/** The monitor of one state root: listens on RUNDIR/monitor.sock. */
/**
 * A monitor started by an older paene keeps serving while its contexts run
 * (it reaps their inits) and may not know a flag a newer start sends.
 */
function staleMonitor(socket: string, why: string): string {
  return `the paene monitor on ${socket} was started by an older paene (${why}); it exits by itself once no context of this state root runs: stop them ('paene stop --all') and start again`;
}

/** A refusal from the monitor or the helper: its code (proto/helper-reply.ts; undefined from a monitor an older paene started) and message. */
export class HelperRefusal extends PaeneError {
  constructor(
    readonly helperCode: string | undefined,
    message: string,
  ) {
    super('internal', message);
  }
}

export class Monitor {
  constructor(readonly runDir: string) {}

  get socket(): string {
    return path.join(this.runDir, 'monitor.sock');
  }

  /** Sends one request; starts the monitor first if none is listening. */
  async request(args: string[]): Promise<string> {
    try {
      return await this.send(args);
    } catch (e) {
      if (!isNotListening(e)) throw e;
    }
    await this.spawnMonitor();
    let last: unknown;
    for (let i = 0; i < 100; i++) {
      try {
        return await this.send(args);
      } catch (e) {
        // Only "not listening yet" is worth another try; the monitor's own answer (err ...) is final.
        if (!isNotListening(e)) throw e;
        last = e;
        await sleep(20);
      }
    }
    throw new PaeneError('internal', `the paene monitor did not come up on ${this.socket}: ${(last as Error).message}`);
  }

  /**
   * Runs a host program as a child of the monitor (so it is reaped, and it
   * outlives this process); resolves to its pid. For per-context daemons.
   */
  async spawn(program: string, args: string[]): Promise<number> {
    return Number(await this.request(['spawn', program, ...args]));
  }

  /**
   * How the monitor makes a context's root its namespace's root: a copy of
   * its staging namespace (no walk of every task on the host per start), or
   * pivot_root where that could not be made (why: the monitor's words).
   */
  async rootSwitch(): Promise<{ staged: true } | { staged: false; why: string }> {
    const a = await this.request(['root-switch']).catch((e: Error) => {
      if (e instanceof HelperRefusal && e.helperCode === undefined) return 'pivot_root the monitor was started by an older paene';
      throw e;
    });
    return a === 'staged' ? { staged: true } : { staged: false, why: a.replace(/^pivot_root /, '') };
  }

  /** Sends one request to a running monitor; undefined if none listens (none is started for it). */
  async tell(args: string[]): Promise<string | undefined> {
    try {
      return await this.send(args);
    } catch (e) {
      if (isNotListening(e)) return undefined;
      throw e;
    }
  }

  /** Asks a running monitor to exit once it has no contexts; no-op if none runs. */
  async quit(): Promise<void> {
    try {
      await this.send(['quit']);
    } catch {
      /* not running */
    }
  }

  isRunning(): Promise<boolean> {
    return this.send(['ping']).then(
      () => true,
      () => false,
    );
  }

  /**
   * Starts the monitor in the background and waits until it listens. If
   * another paene started one meanwhile, ours sees the lock and exits at once.
   */
  private spawnMonitor(): Promise<void> {
    fs.mkdirSync(this.runDir, { recursive: true, mode: 0o700 });
    return new Promise((resolve, reject) => {
      // A minimal environment: context inits inherit it and guests can read /proc/1/environ.
      const child = spawn(helperPath(), ['monitor', '--dir', this.runDir, '--idle', '30'], {
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let out = '';
      let err = '';
      const done = () => {
        child.stdout.destroy();
        child.stderr.destroy();
        child.unref();
        resolve();
      };
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ready')) done();
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code === 0)
          done(); // another monitor already serves this root
        else reject(new PaeneError('internal', `the paene monitor failed to start: ${err.trim() || `exit ${code}`}`));
      });
    });
  }

  private send(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(this.socket);
      let out = '';
      sock.setEncoding('utf8');
      sock.on('connect', () => {
        sock.write(Buffer.from(args.map((a) => a + '\0').join('') + '\0'));
      });
      sock.on('data', (d: string) => (out += d));
      sock.on('error', reject);
      sock.on('close', () => {
        const line = out.trim();
        const r = parseReply(HELPER_ERRORS, line);
        if (r.ok) resolve(r.value);
        else if (!line.startsWith('err ')) reject(new PaeneError('internal', `unexpected answer from the paene monitor: '${line}'`));
        // no code: a monitor an older paene started, which may not know what this one asks
        else if (r.code === undefined) reject(new HelperRefusal(undefined, staleMonitor(this.socket, r.message)));
        else if (r.code === 'unknown-flag') reject(new HelperRefusal(r.code, staleMonitor(this.socket, `it does not know ${r.message}`)));
        else reject(new HelperRefusal(r.code, r.code === 'cgroup-gone' ? `open ${r.message}: the cgroup is gone` : r.message));
      });
    });
  }
}
