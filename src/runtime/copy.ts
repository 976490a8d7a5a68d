// `paene cp`: files into and out of a running context, streamed as a tar.
//
// The guest's side of a copy runs inside the context (tar, or busybox tar,
// through exec, with every wall of an exec): the guest's own view of its
// paths decides where its side reads or writes, so a guest symlink can never
// point it at the host. The host's side is the host's tar when it reads (a
// path the caller named) and, when it writes, paene's own extractor, which
// treats the guest's stream as hostile: every member must lie under the
// source the caller named (no `..`, no absolute names, no other top-level
// names), no path is ever followed through a symlink (ones already in the
// destination or ones the stream made), device nodes and FIFOs are skipped,
// and set-id bits are dropped. Between the two runs a pipe: the host tar's
// stdout is the guest tar's stdin, or the guest tar's stdout is read here.

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { PaeneError } from '../model/errors.js';
import { NAME_RE } from '../model/names.js';
import { GUEST_PUT } from '../proto/copy.js';
import { openPipes, releaseNonBlocking } from './pipe.js';
import type { Runtime } from './runtime.js';
import { type TarHeader as Header, TarReader, type TarSink } from './tarread.js';

/** One end of a copy: a host path, or a path in a context. */
export interface CopyEnd {
  context?: string;
  path: string;
}

/** `NAME:PATH` is a path in context NAME; anything else (an absolute or ./ path) is the host's. */
export function parseCopyEnd(arg: string): CopyEnd {
  const i = arg.indexOf(':');
  if (i > 0 && !arg.slice(0, i).includes('/')) {
    const context = arg.slice(0, i);
    if (!NAME_RE.test(context))
      throw new PaeneError('invalid-argument', `'${context}' in '${arg}' is not a context name (a host path with ':' is written ./${arg})`);
    const p = arg.slice(i + 1);
    if (p === '') throw new PaeneError('invalid-argument', `'${arg}': name a path in context '${context}' after the colon`);
    return { context, path: p };
  }
  if (arg === '') throw new PaeneError('invalid-argument', 'an empty path');
  return { path: arg };
}

export interface CopyOptions {
  /** keep the archive's owners (uid/gid) on the destination; default: the destination's user (root) owns them */
  archive?: boolean;
  onWarning?: (message: string) => void;
}

export interface CopyResult {
  /** entries written (files, directories, links) */
  entries: number;
  /** file data copied */
  bytes: number;
  /** entries skipped (device nodes, FIFOs) */
  skipped: number;
}

/** The guest side: its tar, else busybox's, with the arguments as they are (no shell quoting of paths). */
export const GUEST_TAR = 'if command -v tar >/dev/null 2>&1; then exec tar "$@"; fi; exec busybox tar "$@"';

/** Splits a guest path into the directory tar runs in and the member it names; `/` itself is `.` in `/`. */
function guestSplit(p: string): { dir: string; base: string } {
  const abs = path.posix.normalize(p.startsWith('/') ? p : `/${p}`);
  if (abs === '/') return { dir: '/', base: '.' };
  const trimmed = abs.replace(/\/+$/, '');
  return { dir: path.posix.dirname(trimmed), base: path.posix.basename(trimmed) };
}

function checkName(n: string, what: string): void {
  if (/[\n\r\0]/.test(n)) throw new PaeneError('invalid-argument', `${what}: a name with a newline or NUL is not copied`);
}

/**
 * Waits for a child's exit and the end of its stderr (the last 4 KiB kept).
 * Not 'close': a child whose stdout was handed to another as its stdin never
 * closes that stream here.
 */
function finished(child: ChildProcess): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const errEnd = new Promise<void>((resolve) => {
    if (!child.stderr) return resolve();
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4096);
    });
    child.stderr.on('end', resolve).on('error', () => resolve());
  });
  const exit = new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
  return Promise.all([exit, errEnd]).then(([code]) => ({ code, stderr }));
}

/** What the guest side said, as an error of the copy (its tar not being there said as such). */
function guestFailure(name: string, r: { code: number; stderr: string }, what: string): PaeneError {
  if (r.code === 127)
    return new PaeneError(
      'unsupported',
      `context '${name}' has neither tar nor busybox in its PATH (cp runs its side of the copy inside it)`,
    );
  const msg = r.stderr.trim().split('\n').slice(-3).join('; ');
  return new PaeneError(
    /No such file|not found|cannot stat|can't stat/i.test(msg) ? 'not-found' : 'internal',
    `${what} in '${name}': ${msg || `exit ${r.code}`}`,
  );
}

/**
 * Host SRC into context NAME's DST: an existing directory DST receives SRC
 * under its own name, anything else becomes DST (SRC renamed). The host's
 * tar reads SRC (not following symlinks in it); the guest's tar writes, in
 * the context, as its own view of DST says.
 */
export async function copyIn(rt: Runtime, src: string, name: string, dst: string, opts: CopyOptions = {}): Promise<CopyResult> {
  const abs = path.resolve(src);
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st) throw new PaeneError('not-found', `${src}: no such file or directory on the host`);
  const base = path.basename(abs);
  if (base === '') throw new PaeneError('invalid-argument', 'copying the host root / into a context is refused');
  checkName(base, src);
  // One command in the guest decides and extracts: an existing directory DST (its view: its symlinks resolved
  // inside it) receives SRC under its own name; anything else becomes DST, by a rename in its parent.
  const host = spawn('tar', ['-c', '-f', '-', '--numeric-owner', '-C', path.dirname(abs), '--', base], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const hostDone = finished(host);
  const guest = await rt.execChild(
    name,
    ['sh', '-c', GUEST_PUT, 'paene-cp', dst, base, st.isDirectory() ? 'dir' : 'file', ...(opts.archive ? ['--numeric-owner'] : ['-o'])],
    [host.stdout as Readable, 'ignore', 'pipe'],
  );
  const [h, g] = await Promise.all([hostDone, finished(guest)]);
  if (g.code !== 0) throw guestFailure(name, g, `writing ${dst}`);
  if (h.code !== 0) throw new PaeneError('internal', `reading ${src} on the host: ${h.stderr.trim() || `tar exit ${h.code}`}`);
  const u = st.isDirectory() ? undefined : st.size;
  return { entries: 1, bytes: u ?? 0, skipped: 0 };
}

/**
 * Context NAME's SRC to host DST: an existing directory DST receives it
 * under its own name, anything else becomes DST (its parent must exist).
 * The guest's tar reads in the context; the stream is extracted here as hostile.
 */
export async function copyOut(rt: Runtime, name: string, src: string, dst: string, opts: CopyOptions = {}): Promise<CopyResult> {
  const from = guestSplit(src);
  checkName(from.base, src);
  const abs = path.resolve(dst);
  const st = fs.statSync(abs, { throwIfNoEntry: false });
  let dir: string;
  let top: string;
  if (st?.isDirectory()) {
    dir = abs;
    top = from.base === '.' ? name : from.base;
  } else {
    dir = path.dirname(abs);
    top = path.basename(abs);
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory())
      throw new PaeneError('not-found', `${path.dirname(dst)}: no such directory on the host`);
  }
  // The guest's tar writes into a kernel pipe read here with blocking reads of up to 1 MiB, each piece parsed
  // and written out before the next read (pipe.ts says why not Node's stdio pipe). Its stderr is a pipe the
  // guest cannot block on (what does not fit is lost to it), drained here between reads: a guest that writes
  // much there never stops its stdout while this process waits on it.
  const [out, err] = openPipes(['blocking', 'non-blocking']);
  let guest: ChildProcess;
  try {
    guest = await rt.execChild(
      name,
      ['sh', '-c', GUEST_TAR, 'paene-cp', '-c', '-f', '-', '-C', from.dir, from.base],
      ['ignore', out.write, err.write],
    );
  } catch (e) {
    for (const fd of [out.read, err.read, err.write]) fs.closeSync(fd);
    throw e;
  } finally {
    fs.closeSync(out.write);
  }
  releaseNonBlocking(err.write);
  const exit = exited(guest);
  const stderr = new StderrTail(err.read);
  const x = new SafeExtractor(dir, from.base, top, opts);
  let extractErr: unknown;
  try {
    x.run(out.read, () => stderr.drain());
  } catch (e) {
    extractErr = e;
    guest.kill('SIGKILL');
  } finally {
    fs.closeSync(out.read);
  }
  const g = { code: await exit, stderr: stderr.finish() };
  if (extractErr) throw extractErr;
  if (g.code !== 0) throw guestFailure(name, g, `reading ${src}`);
  if (x.result.entries === 0 && x.result.skipped === 0) throw new PaeneError('not-found', `${src}: nothing came out of '${name}'`);
  return x.result;
}

function exited(child: ChildProcess): Promise<number> {
  return new Promise<number>((resolve) => {
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** The last 4 KiB of what a child wrote into a pipe whose read end is non-blocking, read when asked (never waiting). */
class StderrTail {
  private text = '';
  private readonly buf = Buffer.allocUnsafe(65536);
  constructor(private readonly fd: number) {}

  drain(): void {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return;
        throw e;
      }
      if (n === 0) return;
      this.text = (this.text + this.buf.toString('utf8', 0, n)).slice(-4096);
    }
  }

  /** After the child's exit: what is left, and the pipe closed. */
  finish(): string {
    try {
      this.drain();
    } finally {
      fs.closeSync(this.fd);
    }
    return this.text;
  }
}

/**
 * Extracts a tar from a guest under `dir`, its members renamed from `from`
 * (the source's name) to `to`; refuses anything else. See the file's head.
 */
class SafeExtractor {
  readonly result: CopyResult = { entries: 0, bytes: 0, skipped: 0 };
  /** directories under `dir` known to be real directories (made here or checked) */
  private readonly dirs = new Set<string>();
  /** regular files this copy wrote: the only targets a hard link may name */
  private readonly files = new Set<string>();
  private readonly dirModes: { p: string; mode: number; mtime: Date }[] = [];
  /** the file being written, closed here if the stream fails inside it */
  private open: number | undefined;

  constructor(
    private readonly dir: string,
    private readonly from: string,
    private readonly to: string,
    private readonly opts: CopyOptions,
  ) {
    this.dirs.add(dir);
  }

  /** The host path of a member, or a refusal: only names under the source, never `..`. */
  private place(raw: string): string {
    const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
    const fromParts = this.from === '.' ? [] : [this.from];
    if (raw.startsWith('/') || parts.some((p) => p === '..') || /[\0]/.test(raw))
      throw new PaeneError('hostile-archive', `the guest's tar sent ${JSON.stringify(raw)}: absolute or '..' names are refused`);
    if (fromParts.length && parts[0] !== this.from)
      throw new PaeneError('hostile-archive', `the guest's tar sent ${JSON.stringify(raw)}, which is not under ${this.from}`);
    const rest = parts.slice(fromParts.length);
    return path.join(this.dir, this.to, ...rest);
  }

  /** Every directory between `dir` and `p` (excluded) is a real directory, not a symlink. */
  private checkParents(p: string): void {
    const chain: string[] = [];
    for (let d = path.dirname(p); !this.dirs.has(d); d = path.dirname(d)) {
      if (d.length <= this.dir.length) throw new PaeneError('hostile-archive', `${p} is outside ${this.dir}`);
      chain.push(d);
    }
    for (const d of chain.reverse()) {
      const st = fs.lstatSync(d, { throwIfNoEntry: false });
      if (st === undefined) {
        fs.mkdirSync(d, { mode: 0o755 });
      } else if (!st.isDirectory()) {
        throw new PaeneError(
          'hostile-archive',
          `${d} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}: nothing is written through it`,
        );
      }
      this.dirs.add(d);
    }
  }

  /** Makes room for a non-directory at `p`: an old file or symlink goes; a directory stays and refuses. */
  private clear(p: string): void {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) return;
    if (st.isDirectory()) throw new PaeneError('wrong-state', `${p} is a directory: not replaced by a file`);
    fs.unlinkSync(p);
  }

  private owner(p: string, h: Header): void {
    if (this.opts.archive && h.uid !== undefined && h.gid !== undefined) fs.lchownSync(p, h.uid, h.gid);
  }

  /** A member: made (or refused) at once; a regular file's data goes to the sink returned. */
  private entry(h: Header): TarSink | undefined {
    const p = this.place(h.name);
    const mode = h.mode & 0o777; // set-id and sticky bits dropped: the guest's setuid root program is not the host's
    if ((h.mode & 0o7000) !== 0) this.opts.onWarning?.(`${path.relative(this.dir, p)}: set-id bits dropped`);
    this.checkParents(p);
    switch (h.type) {
      case 'directory': {
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        if (st === undefined) fs.mkdirSync(p, { mode: 0o700 });
        else if (!st.isDirectory()) throw new PaeneError('wrong-state', `${p} exists and is not a directory`);
        this.dirs.add(p);
        this.owner(p, h);
        this.dirModes.push({ p, mode, mtime: h.mtime });
        break;
      }
      case 'file':
      case 'contiguous-file': {
        this.clear(p);
        const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
        this.open = fd;
        this.result.entries++;
        // plain synchronous writes of each piece: the page cache takes them at once, and no stream queue sits between
        return {
          write: (data) => {
            for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off, data.length - off);
          },
          end: () => {
            this.open = undefined;
            fs.closeSync(fd);
            fs.chmodSync(p, mode);
            this.owner(p, h);
            fs.utimesSync(p, h.mtime, h.mtime);
            this.files.add(p);
            this.result.bytes += h.size;
          },
        };
      }
      case 'symlink': {
        this.clear(p);
        fs.symlinkSync(h.linkname, p);
        this.owner(p, h);
        fs.lutimesSync(p, h.mtime, h.mtime);
        break;
      }
      case 'link': {
        const target = this.place(h.linkname);
        if (!this.files.has(target))
          throw new PaeneError(
            'hostile-archive',
            `the guest's tar sent a hard link to ${JSON.stringify(h.linkname)}, not a file of this copy`,
          );
        this.clear(p);
        fs.linkSync(target, p);
        break;
      }
      default:
        // character and block devices, FIFOs: a guest's node is not made on the host
        this.opts.onWarning?.(`${path.relative(this.dir, p)}: ${h.type} skipped (cp makes no device nodes or FIFOs on the host)`);
        this.result.skipped++;
        return undefined;
    }
    this.result.entries++;
    return undefined;
  }

  /** Reads the tar from `fd` (blocking reads) to its end and extracts it, `between` after each read; then the directories' own modes and times. */
  run(fd: number, between: () => void): void {
    const reader = new TarReader((h) => this.entry(h));
    const piece = Buffer.allocUnsafe(1 << 20);
    try {
      for (;;) {
        const n = fs.readSync(fd, piece, 0, piece.length, null);
        between();
        if (n === 0) break;
        reader.push(piece.subarray(0, n));
      }
      reader.end();
    } finally {
      if (this.open !== undefined) fs.closeSync(this.open);
    }
    // directories last, deepest first: their own modes and times, after their contents were written
    for (const d of this.dirModes.reverse()) {
      fs.chmodSync(d.p, d.mode);
      fs.utimesSync(d.p, d.mtime, d.mtime);
    }
  }
}
