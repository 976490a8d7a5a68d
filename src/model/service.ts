// A context's guest services (docs/services.md): its main process, the
// restart policy that keeps it running, its log's size, autostart at boot,
// and the init that is pid 1. Pure: validation and the policy's numbers.

import { PaeneError } from './errors.js';

/** The command a context runs at start, as the user gave it; the image's Entrypoint, Cmd, Env, WorkingDir and User fill the rest. */
export interface MainSpec {
  /** replaces the image's Cmd (its Entrypoint stays in front, as docker run does) */
  argv?: string[];
  /** added to (and replacing keys of) the image's Env */
  env?: Record<string, string>;
  cwd?: string;
  /** UID[:GID] or NAME[:GROUP], resolved in the image's /etc/passwd and /etc/group */
  user?: string;
}

export type RestartMode = 'no' | 'on-failure' | 'always' | 'unless-stopped';
export const RESTART_MODES: readonly RestartMode[] = ['no', 'on-failure', 'always', 'unless-stopped'];

export interface RestartPolicy {
  mode: RestartMode;
  /** on-failure: restarts before it gives up (docker's on-failure:N); absent: no bound */
  maxRestarts?: number;
}

export const DEFAULT_RESTART: RestartPolicy = { mode: 'no' };

/**
 * The back-off between restarts: the first after `firstMs`, each next one
 * twice as late up to `maxMs`; a run that lasted `resetAfterMs` starts the
 * count again (docker's numbers).
 */
export const RESTART_BACKOFF = { firstMs: 100, maxMs: 30_000, resetAfterMs: 10_000 } as const;

/** The main process's log on the host: rotated at `maxBytes`, `keep` old files kept. */
export interface LogSpec {
  maxBytes: number;
  keep: number;
}

export const DEFAULT_LOG: LogSpec = { maxBytes: 10 * 1024 * 1024, keep: 1 };
export const LOG_BYTES_MIN = 4096;
export const LOG_KEEP_MAX = 16;

/** Marks a context to be started by `paene autostart` (a host's boot); lower orders start first. */
export interface Autostart {
  order: number;
}

/** Who is pid 1: paene's own small init (which runs the main process, if any), or the guest's init. */
export type InitSpec = { kind: 'paene' } | { kind: 'guest'; path: string; flavor?: GuestInitFlavor };
export const GUEST_INIT_DEFAULT = '/sbin/init';

/** The guest inits that boot in a context (docs/services.md), each asked to shut down the way it expects. */
export type GuestInitFlavor = 'busybox' | 'sysvinit';
export const GUEST_INIT_STOP: Readonly<Record<GuestInitFlavor, NodeJS.Signals>> = {
  busybox: 'SIGUSR2', // poweroff: its shutdown actions, then every process ends, then reboot(2) ends the namespace
  sysvinit: 'SIGINT', // inittab's ctrlaltdel: shutdown -r now, the rc scripts' K links, then reboot(2)
};
/** The size of the tmpfs on a guest init's /run. */
export const GUEST_RUN_TMPFS_BYTES = 64 * 1024 * 1024;

/**
 * Which init a guest's init program is, from its resolved name and its first
 * bytes; a sentence saying why not for those that do not boot here.
 */
export function classifyInit(resolvedName: string, head: string): GuestInitFlavor | { refused: string } {
  const base = resolvedName.slice(resolvedName.lastIndexOf('/') + 1);
  if (base === 'busybox' || head.includes('BusyBox v')) return 'busybox';
  if (base === 'systemd' || head.includes('systemd.unit') || head.includes('SYSTEMD_')) {
    return {
      refused:
        "systemd does not boot in a paene context (it wants a writable cgroup tree of its own and a user-session setup paene does not give); use sysvinit-core or busybox init in the guest, or run the service as the context's main process (--cmd)",
    };
  }
  if (head.includes('INIT_VERSION') || head.includes('sysvinit') || head.includes('/etc/inittab')) return 'sysvinit';
  if (base === 'openrc-init') {
    return {
      refused: "openrc-init is not supported as pid 1; OpenRC boots under sysvinit's init (Debian's openrc package with sysvinit-core)",
    };
  }
  return { refused: `${resolvedName} is not an init paene knows how to stop (busybox init and sysvinit boot; systemd does not)` };
}

export function parseRestart(v: string, where = '--restart'): RestartPolicy {
  const m = /^(no|on-failure|always|unless-stopped)(?::(\d{1,6}))?$/.exec(v);
  if (!m) throw new PaeneError('invalid-argument', `${where}: want no, on-failure[:N], always or unless-stopped, got '${v}'`);
  const mode = m[1] as RestartMode;
  if (m[2] !== undefined && mode !== 'on-failure')
    throw new PaeneError('invalid-argument', `${where}: only on-failure takes a count (on-failure:N), got '${v}'`);
  if (m[2] === undefined) return { mode };
  const n = Number(m[2]);
  if (n < 1) throw new PaeneError('invalid-argument', `${where}: on-failure:N wants N of at least 1, got '${v}'`);
  return { mode, maxRestarts: n };
}

export function formatRestart(p: RestartPolicy): string {
  return p.maxRestarts === undefined ? p.mode : `${p.mode}:${p.maxRestarts}`;
}

export function parseInit(v: string): InitSpec {
  if (v === 'paene') return { kind: 'paene' };
  if (v === 'guest') return { kind: 'guest', path: GUEST_INIT_DEFAULT };
  if (v.startsWith('/') && !v.split('/').includes('..') && v.length < 4096 && !v.includes('\0')) return { kind: 'guest', path: v };
  throw new PaeneError('invalid-argument', `--init: want paene, guest or an absolute path in the guest (e.g. /sbin/init), got '${v}'`);
}

const ENV_KEY = /^[^=\0]+$/;

/** Checks a main-process spec (from the CLI, the API or a config file). */
export function validateMain(x: unknown, where: string): MainSpec {
  const bad = (why: string) => new PaeneError('invalid-argument', `${where}: ${why}`);
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw bad('not an object');
  const o = x as Record<string, unknown>;
  const out: MainSpec = {};
  if (o.argv !== undefined) {
    if (
      !Array.isArray(o.argv) ||
      o.argv.length === 0 ||
      o.argv.length > 4096 ||
      !o.argv.every((a) => typeof a === 'string' && !a.includes('\0'))
    )
      throw bad("'argv' must be a non-empty list of strings");
    out.argv = [...(o.argv as string[])];
  }
  if (o.env !== undefined) {
    if (typeof o.env !== 'object' || o.env === null || Array.isArray(o.env)) throw bad("'env' must be an object of strings");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.env as Record<string, unknown>)) {
      if (!ENV_KEY.test(k) || typeof v !== 'string' || v.includes('\0')) throw bad(`'env' entry '${k}' is not KEY=string`);
      env[k] = v;
    }
    out.env = env;
  }
  if (o.cwd !== undefined) {
    if (typeof o.cwd !== 'string' || !o.cwd.startsWith('/') || o.cwd.includes('\0')) throw bad("'cwd' must be an absolute path");
    out.cwd = o.cwd;
  }
  if (o.user !== undefined) {
    if (typeof o.user !== 'string' || !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(o.user))
      throw bad("'user' must be UID[:GID] or NAME[:GROUP]");
    out.user = o.user;
  }
  return out;
}

export function validateRestart(x: unknown, where: string): RestartPolicy {
  const o = x as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || typeof o.mode !== 'string')
    throw new PaeneError('invalid-argument', `${where}: not a restart policy`);
  return parseRestart(o.maxRestarts === undefined ? o.mode : `${o.mode}:${String(o.maxRestarts)}`, where);
}

export function validateLog(x: unknown, where: string): LogSpec {
  const o = x as Record<string, unknown> | null;
  const maxBytes = o?.maxBytes;
  const keep = o?.keep;
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < LOG_BYTES_MIN)
    throw new PaeneError('invalid-argument', `${where}: the log size must be at least ${LOG_BYTES_MIN} bytes`);
  if (typeof keep !== 'number' || !Number.isInteger(keep) || keep < 0 || keep > LOG_KEEP_MAX)
    throw new PaeneError('invalid-argument', `${where}: the rotated logs kept must be 0-${LOG_KEEP_MAX}`);
  return { maxBytes, keep };
}

export function validateAutostart(x: unknown, where: string): Autostart {
  const order = (x as Record<string, unknown> | null)?.order;
  if (typeof order !== 'number' || !Number.isInteger(order) || order < 0 || order > 999_999)
    throw new PaeneError('invalid-argument', `${where}: the autostart order must be a whole number 0-999999`);
  return { order };
}

export function validateInit(x: unknown, where: string): InitSpec {
  const o = x as Record<string, unknown> | null;
  if (o?.kind === 'paene') return { kind: 'paene' };
  if (o?.kind === 'guest' && typeof o.path === 'string') {
    const spec = parseInit(o.path);
    if (o.flavor === undefined) return spec;
    if (o.flavor !== 'busybox' && o.flavor !== 'sysvinit') throw new PaeneError('invalid-argument', `${where}: unknown init flavor`);
    return { kind: 'guest', path: (spec as { path: string }).path, flavor: o.flavor };
  }
  throw new PaeneError('invalid-argument', `${where}: not an init spec`);
}

/** What the host knows of a main process (paene-log's main.state, written as it happens). */
export interface MainState {
  /** running; restarting (in its back-off); exited/killed (the last run ended, no restart due); gave-up (on-failure's bound hit); stopped (with its context) */
  state: 'running' | 'restarting' | 'exited' | 'killed' | 'gave-up' | 'failed' | 'stopped';
  /** its pid inside the context while it runs */
  pid?: number;
  /** the last run's exit code or signal number */
  code?: number;
  signal?: number;
  restarts: number;
  /** when the state was entered (ISO) */
  at: string;
  /** the exec failed: why (errno name) */
  error?: string;
}

const SIGNAL_NAMES: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  4: 'SIGILL',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  10: 'SIGUSR1',
  11: 'SIGSEGV',
  12: 'SIGUSR2',
  13: 'SIGPIPE',
  14: 'SIGALRM',
  15: 'SIGTERM',
};

export function signalName(n: number): string {
  return SIGNAL_NAMES[n] ?? `signal ${n}`;
}

/** One line for status and list: `running (pid 7)`, `exited (code 3)`, `killed (SIGKILL)`, with restarts. */
export function describeMain(s: MainState): string {
  const restarts = s.restarts > 0 ? `, ${s.restarts} restart${s.restarts === 1 ? '' : 's'}` : '';
  const end = s.signal !== undefined ? `killed (${signalName(s.signal)})` : `exited (code ${s.code ?? 0})`;
  switch (s.state) {
    case 'running':
      return `running (pid ${s.pid ?? '?'}${restarts})`;
    case 'restarting':
      return `restarting after ${end}${restarts}`;
    case 'gave-up':
      return `gave up after ${end}${restarts}`;
    case 'failed':
      return `failed to start: ${s.error ?? 'exec failed'}${restarts}`;
    case 'stopped':
      return `stopped with the context${restarts}`;
    default:
      return `${end} at ${s.at}${restarts}`;
  }
}
