// paene-runc's warm planner: one Node process per state root that keeps the
// runtime loaded, so a call through the native front (src/native/paene-runc.c)
// does not pay Node's start (about 0.2 s here, against runc's whole exec of
// 0.07 s). The planner decides and does everything a call does except what
// must happen in the caller's own process: running paene-oci with the
// caller's stdio, so the container's init re-parents to the caller's
// subreaper (the containerd shim) and its output goes where the caller's
// goes. The frames are src/proto/planner.ts.
//
// It listens on ROOT/.planner.sock (0600, in the 0700 root: root only), and
// leaves after PAENE_RUNC_PLANNER_IDLE_MS (default 5 minutes) without a call,
// when its socket is removed or replaced (the root deleted), when the shim it
// serves under leaves, or when a front of another build asks (an upgrade:
// that call and the next ones start afresh).

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PLANNER_ACTION, PLANNER_REPLY, PLANNER_REQUEST } from '../proto/planner.js';
import { decodeMessage, encodeMessage, type Entry, type TokenMessage } from '../proto/tokens.js';
import { main, type CliIO } from './cli.js';
import { readSync, type NativeRun, type NativeRunner } from './runtime.js';
import { PaeneError } from '../model/errors.js';
import { parseMountinfo } from '../cgroups/cgroups.js';

export const PLANNER_SOCKET = '.planner.sock';

/** The build a front and a planner must share: the bundle's modification time (ns) and size. */
export function buildId(bundleFile: string): string {
  const st = fs.statSync(bundleFile, { bigint: true });
  return `${st.mtimeNs}.${st.size}`;
}

/**
 * Ends the planner of a state root, if one runs, and waits (at most 5 s)
 * until it is gone: its socket removed, it leaves at its next look. For
 * whoever removes a root (a benchmark's cleanup, a test's), so nothing of
 * paene-runc outlives the root.
 */
export async function stopPlanner(root: string): Promise<void> {
  const sock = path.join(root, PLANNER_SOCKET);
  fs.rmSync(sock, { force: true });
  const mine = () =>
    fs.readdirSync('/proc').some((p) => {
      if (!/^\d+$/.test(p)) return false;
      try {
        const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv[2] === '__planner' && path.resolve(argv[3] ?? '') === path.resolve(root);
      } catch {
        return false;
      }
    });
  for (let i = 0; i < 100 && mine(); i++) await new Promise((r) => setTimeout(r, 50));
}

/** A frame: the message's length (4 bytes, little-endian), then the message. */
export function frame(msg: TokenMessage, entries: readonly Entry[]): Buffer {
  const body = encodeMessage(msg, entries);
  const head = Buffer.alloc(4);
  head.writeUInt32LE(body.length);
  return Buffer.concat([head, body]);
}

/** Reads frames off a socket: the first (the request) on its own, every later one a reply to a spawn, by its id. */
class Frames {
  private buf = Buffer.alloc(0);
  private first?: (b: Buffer | undefined) => void;
  private firstFrame?: Buffer;
  private seen = 0;
  private readonly waiters = new Map<string, (v: string | undefined) => void>();
  private readonly early = new Map<string, string>();
  private closed = false;

  constructor(sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32LE(0)) {
        const n = this.buf.readUInt32LE(0);
        this.deliver(this.buf.subarray(4, 4 + n));
        this.buf = this.buf.subarray(4 + n);
      }
    });
    sock.on('close', () => {
      this.closed = true;
      this.first?.(undefined);
      for (const w of this.waiters.values()) w(undefined);
      this.waiters.clear();
    });
  }

  private deliver(b: Buffer): void {
    if (this.seen++ === 0) {
      if (this.first) this.first(b);
      else this.firstFrame = b;
      return;
    }
    for (const [k, id, v] of decodeMessage(PLANNER_REPLY, b)) {
      const key = `${k} ${id}`;
      const w = this.waiters.get(key);
      if (w) {
        this.waiters.delete(key);
        w(v);
      } else this.early.set(key, v as string);
    }
  }

  async request(): Promise<Entry[]> {
    const b = this.firstFrame ?? (this.closed ? undefined : await new Promise<Buffer | undefined>((r) => (this.first = r)));
    if (b === undefined) throw new PaeneError('internal', 'the paene-runc front went away');
    return decodeMessage(PLANNER_REQUEST, b);
  }

  /** The reply `kind` (sync or exited) to spawn `id`. */
  async reply(kind: 'sync' | 'exited', id: string): Promise<string> {
    const key = `${kind} ${id}`;
    const got = this.early.get(key);
    if (got !== undefined) {
      this.early.delete(key);
      return got;
    }
    const v = this.closed ? undefined : await new Promise<string | undefined>((r) => this.waiters.set(key, r));
    if (v === undefined) throw new PaeneError('internal', 'the paene-runc front went away');
    return v;
  }
}

const noNul = (t: string) => t.replace(/\0/g, '');

/** One call: the front's request run through the CLI, paene-oci run by the front. */
async function serveCall(sock: net.Socket, build: string, onStale: () => void): Promise<void> {
  const frames = new Frames(sock);
  const send = (e: Entry[]) => sock.write(frame(PLANNER_ACTION, e));
  const req = await frames.request();
  const one = (k: string) => req.find((e) => e[0] === k)?.[1];
  if (one('build') !== build) {
    send([['stale']]);
    sock.end();
    onStale();
    return;
  }
  const argv = req.filter((e) => e[0] === 'arg').map((e) => e[1] as string);
  let spawns = 0;
  const native: NativeRunner = async (cmd, planFile, wait, input, preserve = 0): Promise<NativeRun> => {
    // the front hands calls with preserved descriptors to Node itself
    if (preserve) throw new PaeneError('internal', 'the planner cannot pass descriptors');
    const id = String(++spawns);
    const w = wait ? '1' : '0';
    send([input === undefined ? ['spawn', id, cmd, planFile, w] : ['spawn-input', id, cmd, planFile, w, noNul(input)]]);
    const sync = await frames.reply('sync', id);
    const exit = wait ? frames.reply('exited', id).then(Number) : undefined;
    exit?.catch(() => undefined); // a front gone before the status: the caller's await reports it, no stray rejection
    const r = readSync(cmd, sync);
    if (r === undefined) {
      const code = exit ? await exit : 125;
      throw new PaeneError('internal', `paene-oci ${cmd} failed (status ${code}) without a message`);
    }
    if ('error' in r) throw new PaeneError('internal', r.error);
    return { pid: r.pid, exit };
  };
  const io: CliIO = {
    out: (t) => send([['out', noNul(t)]]),
    err: (t) => send([['err', noNul(t)]]),
    env: {},
    cwd: one('cwd') ?? '/',
    uid: 0, // the socket is root's alone
    pid: 0,
    native,
    fdOpen: () => false,
    stdin: () => {
      throw new PaeneError('internal', 'the planner has no standard input');
    },
  };
  const code = await main(argv, io);
  send([['exit', String(code)]]);
  sock.end();
}

/**
 * The planner starts in its first caller's cgroups (a containerd shim's,
 * Podman's conmon's): staying there would keep them from being emptied and
 * removed after the container. It moves itself to the root group of every
 * mounted hierarchy, the host's, where it holds nobody's group.
 */
function leaveCallerCgroups(): void {
  for (const m of parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'))) {
    if (m.fsType !== 'cgroup' && m.fsType !== 'cgroup2') continue;
    try {
      fs.writeFileSync(path.join(m.mountPoint, 'cgroup.procs'), String(process.pid));
    } catch {
      /* a hierarchy that is not ours to write (a nested cgroup namespace): nothing held there by us */
    }
  }
}

/**
 * The subreapers a planner may be the child of: a containerd shim
 * (containerd-shim-runc-v2, its comm cut to 15 bytes), which reaps whatever
 * child exits and never waits for one. Every call of containerd, Docker and
 * the CRI comes from a shim, so a planner that refused them all left each of
 * those calls to a cold Node (0.4-1.1 s on a busy host, against 0.02-0.1 s
 * warm). Not Podman's conmon: it waits for all its children before it exits.
 */
const SERVES_UNDER: ReadonlySet<string> = new Set(['containerd-shim']);

/** Whether a planner whose parent is `ppid` may serve: init's child, or a shim's. */
function servesUnder(ppid: number, parentComm: () => string): boolean {
  if (ppid === 1) return true;
  try {
    return SERVES_UNDER.has(parentComm().trim());
  } catch {
    return false; // the parent already gone: the planner is someone else's child by now
  }
}

/** Serves the state root until idle; returns when it leaves. */
export async function serve(root: string, bundleFile: string): Promise<void> {
  // Started by a front under a subreaper (Podman's conmon, a containerd shim), the planner is that
  // subreaper's child once the front's fork exits: conmon waits for all its children before it
  // exits, so a planner there would keep it (and its container's cleanup) waiting. It serves as
  // init's child or a containerd shim's (servesUnder); a conmon's leaves at once, and a call from
  // elsewhere (podman itself, a shell, a unit) starts the one they use.
  const parent = process.ppid;
  if (!servesUnder(parent, () => fs.readFileSync(`/proc/${parent}/comm`, 'utf8'))) return;
  leaveCallerCgroups();
  const build = buildId(bundleFile);
  const idleMs = Number(process.env.PAENE_RUNC_PLANNER_IDLE_MS ?? 300_000);
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const sockPath = path.join(root, PLANNER_SOCKET);
  // another planner alive on the socket: it serves; a dead one's socket: ours replaces it
  const alive = await new Promise<boolean>((res) => {
    const c = net.createConnection(sockPath);
    c.on('connect', () => {
      c.destroy();
      res(true);
    });
    c.on('error', () => res(false));
  });
  if (alive) return;
  fs.rmSync(sockPath, { force: true });
  let calls = 0;
  let timer: NodeJS.Timeout | undefined;
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined); // a front that went away: its call ends, the planner goes on
    calls++;
    if (timer) clearTimeout(timer);
    serveCall(sock, build, () => leave())
      .catch(() => sock.destroy())
      .finally(() => {
        calls--;
        arm();
      });
  });
  const leave = () => {
    server.close();
    try {
      if (fs.statSync(sockPath).ino === ino) fs.rmSync(sockPath, { force: true });
    } catch {
      /* gone */
    }
  };
  const arm = () => {
    if (timer) clearTimeout(timer);
    if (calls === 0) timer = setTimeout(leave, idleMs);
  };
  const old = process.umask(0o177);
  await new Promise<void>((res, rej) => server.listen(sockPath, res).once('error', rej));
  process.umask(old);
  const ino = fs.statSync(sockPath).ino;
  arm();
  // the root removed or the socket replaced: this planner has nothing left to serve; its shim gone
  // (the pod or the daemon stopped): it leaves with it, so nothing of paene-runc outlives its caller
  const watch = setInterval(() => {
    try {
      if (fs.statSync(sockPath).ino !== ino || process.ppid !== parent) leave();
    } catch {
      leave();
    }
  }, 500);
  watch.unref();
  await new Promise<void>((res) => server.on('close', res));
  clearInterval(watch);
}
