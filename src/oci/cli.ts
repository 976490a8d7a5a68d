// paene-runc: runc's command line over paene's walls, as containerd's
// io.containerd.runc.v2 shim and the OCI runtime-tools call it.
//
// Flags are parsed the way runc's (urfave/cli) are: -flag, --flag, --flag=value,
// global flags before the verb. Errors go to stderr and, with --log, to the log
// file (--log-format json: {"level":"error","msg":...}, what the shim reads).

import fs from 'node:fs';
import path from 'node:path';
import { PaeneError, isPaeneError } from '../model/errors.js';
import { NS_TYPES, RLIMITS, type OciProcess, type OciResources } from './spec.js';
import { CAP_NAMES } from '../model/caps.js';
import { OCI_JSON_MAX_BYTES, parseOciJson } from './json.js';
import { DEFAULT_OCI_ROOT, OCI_VERSION, OciRuntime, type NativeRunner } from './runtime.js';

const VERSION = '0.1.0';

interface FlagSpec {
  /** flags that take a value */
  value: string[];
  /** boolean flags */
  bool: string[];
}

interface Parsed {
  flags: Map<string, string | true>;
  args: string[];
}

/** Parses flags up to the first positional (later ones too when `interleaved`); `--` ends flags. */
function parseFlags(argv: string[], spec: FlagSpec, stopAtPositional: boolean): Parsed {
  const flags = new Map<string, string | true>();
  const args: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (stopAtPositional) break;
      args.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (spec.value.includes(name)) {
      if (eq >= 0) flags.set(name, body.slice(eq + 1));
      else {
        if (i + 1 >= argv.length) throw new PaeneError('invalid-argument', `flag needs an argument: -${name}`);
        flags.set(name, argv[++i]);
      }
    } else if (spec.bool.includes(name)) {
      const v = eq >= 0 ? body.slice(eq + 1) : 'true';
      if (v !== 'false') flags.set(name, true);
    } else throw new PaeneError('invalid-argument', `flag provided but not defined: -${name}`);
  }
  args.push(...argv.slice(i));
  return { flags, args };
}

const GLOBAL: FlagSpec = {
  value: ['root', 'log', 'log-format', 'criu', 'rootless'],
  bool: ['debug', 'systemd-cgroup', 'help', 'h', 'version', 'v'],
};

const VERBS: Record<string, FlagSpec> = {
  create: { value: ['bundle', 'b', 'pid-file', 'console-socket', 'pidfd-socket', 'preserve-fds'], bool: ['no-pivot', 'no-new-keyring'] },
  run: {
    value: ['bundle', 'b', 'pid-file', 'console-socket', 'pidfd-socket', 'preserve-fds'],
    bool: ['no-pivot', 'no-new-keyring', 'detach', 'd', 'keep', 'no-subreaper'],
  },
  start: { value: [], bool: [] },
  state: { value: [], bool: [] },
  kill: { value: [], bool: ['all', 'a'] },
  delete: { value: [], bool: ['force', 'f'] },
  exec: {
    value: [
      'process',
      'p',
      'pid-file',
      'console-socket',
      'pidfd-socket',
      'cwd',
      'env',
      'e',
      'user',
      'u',
      'additional-gids',
      'g',
      'cap',
      'c',
      'process-label',
      'apparmor',
      'preserve-fds',
      'cgroup',
    ],
    bool: ['detach', 'd', 'tty', 't', 'no-new-privs', 'ignore-paused'],
  },
  ps: { value: ['format', 'f'], bool: [] },
  update: {
    value: [
      'resources',
      'r',
      'memory',
      'cpu-shares',
      'cpu-quota',
      'cpu-period',
      'cpuset-cpus',
      'cpuset-mems',
      'pids-limit',
      'memory-swap',
      'memory-reservation',
      'blkio-weight',
    ],
    bool: [],
  },
  pause: { value: [], bool: [] },
  resume: { value: [], bool: [] },
  list: { value: ['format', 'f'], bool: ['quiet', 'q'] },
  features: { value: [], bool: [] },
};

const USAGE = `paene-runc: an OCI runtime (runc's command line) over paene's walls

usage: paene-runc [global options] COMMAND [options] [ID] ...

global options:
  --root DIR            state directory (default ${DEFAULT_OCI_ROOT})
  --log FILE            append errors and warnings to FILE
  --log-format text|json  json: one {"level","msg","time"} object a line (what containerd's shim reads)
  --systemd-cgroup      accepted for compatibility; cgroupsPath is always a cgroupfs path (slice:prefix:name is refused)
  --debug               also log debug messages
  --rootless VALUE      accepted; paene-runc needs root
  --version             print the version

commands:
  create --bundle DIR [--pid-file F] [--console-socket S] [--no-pivot] [--no-new-keyring] ID
  start ID              run the process of a created container
  run --bundle DIR [--detach] [--pid-file F] ID    create + start (+ wait and delete without --detach)
  state ID              the OCI state JSON
  kill [--all] ID [SIGNAL]   default SIGTERM; numbers and names, with or without SIG
  delete [--force] ID
  exec [--process FILE | options CMD...] [--detach] [--pid-file F] [--console-socket S] [-t] ID
  ps [--format table|json] ID
  update --resources FILE|- ID
  pause ID / resume ID
  list [--format table|json] [-q]
  features              the OCI features JSON

The mapping of config.json onto paene and what is refused: docs/oci.md.`;

/** Where a call's output goes and what it sees of its caller: this process, or (the planner) a front's. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  uid: number;
  /** the caller's pid (LISTEN_PID is checked against it) */
  pid: number;
  /** how paene-oci is run: here, or by the front of the call (oci/runtime.ts) */
  native?: NativeRunner;
  /** whether descriptor fd of the caller is open (--preserve-fds, LISTEN_FDS) */
  fdOpen(fd: number): boolean;
  /** the caller's standard input (`--process -`, `--resources -`) */
  stdin(): string;
}

export function processIO(): CliIO {
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
    uid: process.getuid?.() ?? -1,
    pid: process.pid,
    fdOpen: (fd) => {
      try {
        fs.fstatSync(fd);
        return true;
      } catch {
        return false;
      }
    },
    stdin: () => fs.readFileSync(0, 'utf8'),
  };
}

class Logger {
  constructor(
    private readonly file: string | undefined,
    private readonly json: boolean,
    readonly debugOn: boolean,
    private readonly io: CliIO,
  ) {}

  write(level: 'error' | 'warning' | 'debug', msg: string): void {
    if (!this.file) return;
    const line = this.json
      ? JSON.stringify({ level, msg, time: new Date().toISOString() })
      : `time="${new Date().toISOString()}" level=${level} msg="${msg.replace(/"/g, '\\"')}"`;
    try {
      fs.appendFileSync(this.file, line + '\n');
    } catch {
      /* the log is best effort; stderr carries the error too */
    }
  }
  warn(msg: string): void {
    this.write('warning', msg);
    this.io.err(`paene-runc: warning: ${msg}\n`);
  }
}

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  IOT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  POLL: 29,
  PWR: 30,
  SYS: 31,
};

export function parseSignal(s: string): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw new PaeneError('invalid-argument', `unknown signal "${s}"`);
    return n;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  const rt = /^RTMIN(\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[2] ?? 0);
  const n = SIGNALS[name];
  if (n === undefined) throw new PaeneError('invalid-argument', `unknown signal "${s}"`);
  return n;
}

function one(p: Parsed, verb: string): string {
  if (p.args.length < 1) throw new PaeneError('invalid-argument', `"${verb}" requires a container id`);
  return p.args[0];
}

function readJsonInput(file: string, io: CliIO): unknown {
  if (file === '-') return parseOciJson(io.stdin(), 'stdin');
  const f = path.resolve(io.cwd, file);
  if (fs.statSync(f).size > OCI_JSON_MAX_BYTES)
    throw new PaeneError('invalid-argument', `${file}: over the limit of ${OCI_JSON_MAX_BYTES} bytes`);
  return parseOciJson(fs.readFileSync(f, 'utf8'), file);
}

function features(): unknown {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: [
      'ro',
      'rw',
      'nosuid',
      'suid',
      'nodev',
      'dev',
      'noexec',
      'exec',
      'sync',
      'async',
      'dirsync',
      'mand',
      'nomand',
      'noatime',
      'atime',
      'nodiratime',
      'diratime',
      'relatime',
      'norelatime',
      'strictatime',
      'nostrictatime',
      'lazytime',
      'nolazytime',
      'nosymfollow',
      'symfollow',
      'bind',
      'rbind',
      'private',
      'rprivate',
      'shared',
      'rshared',
      'slave',
      'rslave',
      'unbindable',
      'runbindable',
      'defaults',
    ],
    linux: {
      namespaces: NS_TYPES,
      capabilities: CAP_NAMES.map((c) => 'CAP_' + c),
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: {
        enabled: true,
        actions: [
          'SCMP_ACT_ALLOW',
          'SCMP_ACT_ERRNO',
          'SCMP_ACT_KILL',
          'SCMP_ACT_KILL_THREAD',
          'SCMP_ACT_KILL_PROCESS',
          'SCMP_ACT_TRAP',
          'SCMP_ACT_TRACE',
          'SCMP_ACT_LOG',
        ],
        operators: ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'],
        archs: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        knownFlags: [],
        supportedFlags: [],
      },
      apparmor: { enabled: false },
      selinux: { enabled: false },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: false } },
    },
    annotations: {
      'io.github.paene.runtime': 'paene-runc',
      'paene.io/cpu-burst-us': 'cpu.cfs_burst_us of the container (token-bucket depth)',
    },
    potentiallyUnsafeConfigAnnotations: [],
    rlimits: Object.keys(RLIMITS),
  };
}

/** A count of descriptors (--preserve-fds N). */
function countFlag(v: string | undefined, flag: string): number {
  if (v === undefined) return 0;
  if (!/^\d{1,5}$/.test(v)) throw new PaeneError('invalid-argument', `${flag} ${v}: want a number of descriptors`);
  return Number(v);
}

/**
 * The descriptors create and run pass on, as runc: the socket-activation ones
 * (LISTEN_FDS, when LISTEN_PID is ours or unset) first, then --preserve-fds
 * more, all at their own numbers from 3; the process is told LISTEN_FDS and
 * LISTEN_PID=1. Every other descriptor the caller left open stays out.
 */
/** The caller's descriptors 3 … 3+count-1 must be open: they are what it passes on. */
function checkPassedFds(count: number, io: CliIO, what: string): void {
  for (let fd = 3; fd < 3 + count; fd++) {
    if (!io.fdOpen(fd)) throw new PaeneError('invalid-argument', `descriptor ${fd} is not open (${what} from fd 3)`);
  }
}

function passedFds(preserve: string | undefined, io: CliIO): { preserveFds: number; listenFds: number } {
  const listen = io.env.LISTEN_FDS;
  const pidOk = !io.env.LISTEN_PID || io.env.LISTEN_PID === String(io.pid);
  const listenFds = listen && pidOk ? countFlag(listen, 'LISTEN_FDS') : 0;
  const preserveFds = listenFds + countFlag(preserve, '--preserve-fds');
  checkPassedFds(preserveFds, io, `LISTEN_FDS ${listenFds} + --preserve-fds ${preserveFds - listenFds}`);
  return { preserveFds, listenFds };
}

/** `exec [options] ID CMD...`: the container's own process with the command and option changes. */
function processFromFlags(base: OciProcess, p: Parsed): OciProcess {
  const out: OciProcess = { ...base, args: p.args.slice(1), terminal: p.flags.has('tty') || p.flags.has('t') };
  if (out.args?.length === 0) throw new PaeneError('invalid-argument', 'exec needs a command (or --process FILE)');
  const cwd = p.flags.get('cwd');
  if (typeof cwd === 'string') out.cwd = cwd;
  const env = p.flags.get('env') ?? p.flags.get('e');
  if (typeof env === 'string') out.env = [...(base.env ?? []), env];
  const user = p.flags.get('user') ?? p.flags.get('u');
  if (typeof user === 'string') {
    const [u, g] = user.split(':');
    out.user = { uid: Number(u), gid: Number(g ?? 0) };
    if (!Number.isInteger(out.user.uid) || !Number.isInteger(out.user.gid))
      throw new PaeneError('invalid-argument', `--user ${user}: want UID[:GID]`);
  }
  if (p.flags.has('no-new-privs')) out.noNewPrivileges = true;
  // --cap adds to bounding, effective, permitted and ambient, never inheritable (CVE-2022-29162, as runc since 1.1.2)
  const cap = p.flags.get('cap') ?? p.flags.get('c');
  if (typeof cap === 'string') {
    const name = cap.toUpperCase().startsWith('CAP_') ? cap.toUpperCase() : `CAP_${cap.toUpperCase()}`;
    const c = base.capabilities ?? {};
    const add = (l: string[] | undefined) => [...new Set([...(l ?? []), name])];
    out.capabilities = {
      ...c,
      bounding: add(c.bounding),
      effective: add(c.effective),
      permitted: add(c.permitted),
      ambient: add(c.ambient),
    };
  }
  return out;
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  let log = new Logger(undefined, false, false, io);
  try {
    const g = parseFlags(argv, GLOBAL, true);
    const logFile = g.flags.get('log');
    const fmt = g.flags.get('log-format') ?? 'text';
    if (fmt !== 'text' && fmt !== 'json') throw new PaeneError('invalid-argument', `--log-format ${String(fmt)}: want text or json`);
    log = new Logger(typeof logFile === 'string' ? path.resolve(io.cwd, logFile) : undefined, fmt === 'json', g.flags.has('debug'), io);
    if (g.flags.has('version') || g.flags.has('v')) {
      io.out(`paene-runc version ${VERSION}\nspec: ${OCI_VERSION}\n`);
      return 0;
    }
    const verb = g.args[0];
    if (!verb || g.flags.has('help') || g.flags.has('h') || verb === 'help') {
      io.out(USAGE + '\n');
      return verb || g.flags.has('help') || g.flags.has('h') ? 0 : 1;
    }
    const spec = VERBS[verb];
    if (!spec) throw new PaeneError('invalid-argument', `no such command: ${verb} (see paene-runc --help)`);
    // exec ID CMD...: flags stop at the id, the command keeps its own
    const p = parseFlags(g.args.slice(1), spec, verb === 'exec');
    if (verb === 'exec') {
      const rest = parseFlags(p.args, { value: [], bool: [] }, true);
      p.args = rest.args;
    }
    if (io.uid !== 0) throw new PaeneError('not-root', 'paene-runc needs root (namespaces, cgroups, mounts)');
    const root = path.resolve(io.cwd, typeof g.flags.get('root') === 'string' ? (g.flags.get('root') as string) : DEFAULT_OCI_ROOT);
    const rt = new OciRuntime(root, log, io.native);
    const str = (k: string, alt?: string) => {
      const v = p.flags.get(k) ?? (alt ? p.flags.get(alt) : undefined);
      return typeof v === 'string' ? v : undefined;
    };
    // paths of the call are the caller's: relative to its working directory
    const file = (k: string, alt?: string) => {
      const v = str(k, alt);
      return v === undefined ? undefined : path.resolve(io.cwd, v);
    };
    switch (verb) {
      case 'features':
        io.out(JSON.stringify(features(), null, 2) + '\n');
        return 0;
      case 'create': {
        const id = one(p, verb);
        const fds = passedFds(str('preserve-fds'), io);
        await rt.create(id, {
          bundle: file('bundle', 'b') ?? io.cwd,
          pidFile: file('pid-file'),
          consoleSocket: file('console-socket'),
          noPivot: p.flags.has('no-pivot'),
          ...fds,
        });
        return 0;
      }
      case 'run': {
        const id = one(p, verb);
        const detach = p.flags.has('detach') || p.flags.has('d');
        const fds = passedFds(str('preserve-fds'), io);
        const c = await rt.create(id, {
          bundle: file('bundle', 'b') ?? io.cwd,
          pidFile: file('pid-file'),
          consoleSocket: file('console-socket'),
          noPivot: p.flags.has('no-pivot'),
          foreground: !detach,
          ...fds,
        });
        await rt.start(id);
        if (detach) return 0;
        const code = c.exit ? await c.exit : 0;
        if (!p.flags.has('keep')) await rt.delete(id, true);
        return code;
      }
      case 'start':
        await rt.start(one(p, verb));
        return 0;
      case 'state':
        io.out(JSON.stringify(rt.state(one(p, verb)), null, 2) + '\n');
        return 0;
      case 'kill': {
        const id = one(p, verb);
        rt.kill(id, parseSignal(p.args[1] ?? 'SIGTERM'), p.flags.has('all') || p.flags.has('a'));
        return 0;
      }
      case 'delete': {
        const id = one(p, verb);
        const force = p.flags.has('force') || p.flags.has('f');
        try {
          await rt.delete(id, force);
        } catch (e) {
          // runc: deleting a container that is gone is fine with --force
          if (force && isPaeneError(e, 'not-found')) return 0;
          throw e;
        }
        return 0;
      }
      case 'exec': {
        const id = one(p, verb);
        const procFile = str('process', 'p');
        const proc = procFile ? (readJsonInput(procFile, io) as OciProcess) : processFromFlags(rt.load(id).process, p);
        const preserveFds = countFlag(str('preserve-fds'), '--preserve-fds');
        checkPassedFds(preserveFds, io, `--preserve-fds ${preserveFds}`);
        return await rt.exec(id, proc, {
          pidFile: file('pid-file'),
          consoleSocket: file('console-socket'),
          detach: p.flags.has('detach') || p.flags.has('d'),
          preserveFds,
        });
      }
      case 'ps': {
        const id = one(p, verb);
        const r = rt.load(id);
        const pids = rt.pids(r);
        if ((str('format', 'f') ?? 'table') === 'json') io.out(JSON.stringify(pids) + '\n');
        else io.out(['PID', ...pids.map(String)].join('\n') + '\n');
        return 0;
      }
      case 'update': {
        const id = one(p, verb);
        const resFile = str('resources', 'r');
        if (!resFile)
          throw new PaeneError('invalid-argument', 'update: give --resources FILE (or - for stdin); the per-value flags are not supported');
        rt.update(id, readJsonInput(resFile, io) as OciResources);
        return 0;
      }
      case 'pause':
        await rt.pause(one(p, verb));
        return 0;
      case 'resume':
        rt.resume(one(p, verb));
        return 0;
      case 'list': {
        const all = rt.list().map((r) => ({ ...rt.state(r.id), rootfs: r.rootfs, created: r.created, owner: 'root' }));
        if (p.flags.has('quiet') || p.flags.has('q')) io.out(all.map((s) => s.id + '\n').join(''));
        else if ((str('format', 'f') ?? 'table') === 'json') io.out(JSON.stringify(all) + '\n');
        else {
          const rows = [
            ['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'],
            ...all.map((s) => [s.id, String(s.pid ?? 0), s.status, s.bundle, s.created, s.owner]),
          ];
          const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
          io.out(
            rows
              .map((r) =>
                r
                  .map((c, i) => c.padEnd(w[i]))
                  .join('   ')
                  .trimEnd(),
              )
              .join('\n') + '\n',
          );
        }
        return 0;
      }
    }
    throw new PaeneError('internal', `verb ${verb} not handled`);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log.write('error', msg);
    io.err(`paene-runc: ${msg}\n`);
    return 1;
  }
}
