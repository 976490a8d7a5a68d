// A context's main-process log on the host (docs/services.md): read, tail and
// follow the files paene-log writes in ROOT/contexts/NAME/log/.
//
//   main.log          the current file
//   main.log.1 ...K   rotated ones, main.log.1 the newest of them
//
// Each record is one line in the CRI log format:
//
//   2026-12-07T02:40:01.123456789Z stdout F the content\n
//
// (timestamp, stream stdout|stderr|console, tag F = the line ends here or
// P = it continues in the stream's next record, the content). The host writes
// the timestamps, streams and tags; a hostile guest controls only the content,
// which may be huge: a joined line is cut at LINE_MAX, a tail reads the files
// backwards from their ends, and nothing reads a whole file into memory.

import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PaeneError, errnoOf } from '../model/errors.js';
import { parseCount } from '../model/units.js';

export type LogStream = 'stdout' | 'stderr' | 'console';
export const LOG_STREAMS: readonly LogStream[] = ['stdout', 'stderr', 'console'];

/** The current file of a log directory; rotated ones are `main.log.N`. */
export const LOG_FILE = 'main.log';

/** A line (its partial records joined) is cut after this many bytes. */
export const LINE_MAX = 1 << 20;

/** The most lines a tail keeps (the API and the CLI refuse more). */
export const TAIL_MAX = 1_000_000;

/** One line as the program wrote it (without its newline). */
export interface LogLine {
  /** the timestamp of its first record, as written (RFC 3339, nanoseconds) */
  time: string;
  /** the same in milliseconds since the epoch */
  ms: number;
  stream: LogStream;
  content: Buffer;
  /** longer than LINE_MAX: the rest was dropped */
  truncated?: boolean;
}

export interface LogReadOptions {
  /** only the last N lines (partial records joined count as one) */
  tail?: number;
  /** only lines from this time on */
  since?: Date;
  /** only these streams (default: all) */
  streams?: readonly LogStream[];
}

export interface LogFollowOptions extends LogReadOptions {
  /** ends the follow (the iterator returns) */
  signal?: AbortSignal;
  /** how often the files are looked at for new lines and rotation (ms, default 200) */
  pollMs?: number;
}

// ------------------------------------------------------------- records

interface LogRecord {
  time: string;
  ms: number;
  stream: LogStream;
  partial: boolean;
  content: Buffer;
  /** the record itself was longer than a line may be */
  cut: boolean;
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const STREAM_OF: Record<string, LogStream> = { stdout: 'stdout', stderr: 'stderr', console: 'console' };
/** the longest header: a timestamp with nanoseconds and an offset, the longest stream name, the tag */
const HEADER_MAX = 64;

/** The stream and tag of a record's first bytes (enough for the backward scan), or undefined if it is no record. */
function parseHeader(b: Buffer): { stream: LogStream; partial: boolean; contentAt: number; time: string } | undefined {
  const a = b.indexOf(0x20);
  if (a < 20 || a > 40) return undefined;
  const s = b.indexOf(0x20, a + 1);
  if (s < 0 || s - a > 8) return undefined;
  const stream = STREAM_OF[b.toString('latin1', a + 1, s)];
  const tag = b[s + 1];
  if (stream === undefined || (tag !== 0x46 && tag !== 0x50)) return undefined; // F, P
  // `TS STREAM F content`, or `TS STREAM F` with nothing after (an empty line)
  const after = b[s + 2];
  if (after !== undefined && after !== 0x20 && after !== 0x0a) return undefined;
  const time = b.toString('latin1', 0, a);
  if (!TIME_RE.test(time)) return undefined;
  return { stream, partial: tag === 0x50, contentAt: Math.min(b.length, s + 3), time };
}

/** A whole record (with or without its newline), or undefined if it is not one: a torn or foreign line is skipped. */
export function parseRecord(line: Buffer, cut = false): LogRecord | undefined {
  const h = parseHeader(line.subarray(0, HEADER_MAX));
  if (!h) return undefined;
  const ms = Date.parse(h.time);
  if (!Number.isFinite(ms)) return undefined;
  const end = line[line.length - 1] === 0x0a ? line.length - 1 : line.length;
  return { time: h.time, ms, stream: h.stream, partial: h.partial, content: line.subarray(Math.min(h.contentAt, end), end), cut };
}

/** Joins each stream's partial records into lines, each cut at LINE_MAX. */
class LineJoiner {
  private readonly pending = new Map<
    LogStream,
    { time: string; ms: number; parts: Buffer[]; size: number; truncated: boolean; seq: number }
  >();
  private seq = 0;

  push(r: LogRecord): LogLine | undefined {
    let p = this.pending.get(r.stream);
    if (!p) {
      p = { time: r.time, ms: r.ms, parts: [], size: 0, truncated: false, seq: 0 };
      this.pending.set(r.stream, p);
    }
    p.seq = this.seq++;
    const room = LINE_MAX - p.size;
    if (r.content.length > room) {
      if (room > 0) p.parts.push(Buffer.from(r.content.subarray(0, room)));
      p.size = LINE_MAX;
      p.truncated = true;
    } else if (r.content.length > 0) {
      // a copy: the record's bytes belong to a read buffer that is reused
      p.parts.push(Buffer.from(r.content));
      p.size += r.content.length;
    }
    if (r.cut) p.truncated = true;
    if (r.partial) return undefined;
    this.pending.delete(r.stream);
    return lineOf(r.stream, p);
  }

  /** The lines still open (their last record was partial), in the order of their last records. */
  flush(): LogLine[] {
    const open = [...this.pending.entries()].sort((x, y) => x[1].seq - y[1].seq);
    this.pending.clear();
    return open.map(([stream, p]) => lineOf(stream, p));
  }
}

function lineOf(stream: LogStream, p: { time: string; ms: number; parts: Buffer[]; truncated: boolean }): LogLine {
  return {
    time: p.time,
    ms: p.ms,
    stream,
    content: p.parts.length === 1 ? (p.parts[0] as Buffer) : Buffer.concat(p.parts),
    ...(p.truncated ? { truncated: true } : {}),
  };
}

// ------------------------------------------------------------- files

const CHUNK = 64 * 1024;
/** a record longer than this is kept to this length (the writer's records are far shorter) */
const RECORD_MAX = LINE_MAX + HEADER_MAX;

interface LogFile {
  fd: number;
  ino: number;
  name: string;
}

/** The rotated files' numbers in a directory listing, oldest (highest) first. */
function rotatedNumbers(names: string[]): number[] {
  return names
    .flatMap((n) => {
      const m = /^main\.log\.([1-9]\d{0,3})$/.exec(n);
      return m ? [Number(m[1])] : [];
    })
    .sort((a, b) => b - a);
}

/**
 * Opens the log's files, oldest first (main.log.K ... main.log.1, main.log).
 * Newest first, so that a rotation while they open shows as one file seen
 * twice (then they are opened again). A missing directory is no files.
 */
function openLogFiles(dir: string): LogFile[] {
  for (let attempt = 0; ; attempt++) {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return [];
      throw e;
    }
    const wanted = [
      LOG_FILE,
      ...rotatedNumbers(names)
        .reverse()
        .map((n) => `${LOG_FILE}.${n}`),
    ];
    const opened: LogFile[] = [];
    let again = false;
    for (const name of wanted) {
      let fd: number;
      try {
        fd = fs.openSync(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') continue; // rotated away meanwhile, or main.log between a rotation and its new file
        throw e;
      }
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        fs.closeSync(fd);
        continue;
      }
      if (opened.some((f) => f.ino === st.ino)) {
        fs.closeSync(fd);
        again = true;
        break;
      }
      opened.push({ fd, ino: st.ino, name });
    }
    if (!again || attempt >= 5) return opened.reverse();
    for (const f of opened) fs.closeSync(f.fd);
  }
}

function sizeOf(fd: number): number {
  return fs.fstatSync(fd).size;
}

/**
 * Reads a file's records forward from an offset, one chunk at a time. The
 * bytes after the last newline wait for the rest of their record (a writer
 * mid-write); a record longer than RECORD_MAX keeps its first RECORD_MAX bytes.
 */
class RecordCursor {
  private carry: Buffer[] = [];
  private carryLen = 0;
  private cut = false;
  private readonly buf = Buffer.allocUnsafe(CHUNK);

  constructor(
    readonly file: LogFile,
    public offset: number,
  ) {}

  /** Reads up to `max` bytes; hands each complete record to `each`; returns the bytes read (0 at the end for now). */
  pump(each: (r: LogRecord) => void, max = 16 * CHUNK): number {
    let total = 0;
    while (total < max) {
      const n = fs.readSync(this.file.fd, this.buf, 0, CHUNK, this.offset);
      if (n <= 0) break;
      this.offset += n;
      total += n;
      let from = 0;
      for (let nl = this.buf.indexOf(0x0a, 0); nl >= 0 && nl < n; nl = this.buf.indexOf(0x0a, from)) {
        this.take(this.buf.subarray(from, nl + 1));
        const rec = this.carry.length === 1 ? (this.carry[0] as Buffer) : Buffer.concat(this.carry, this.carryLen);
        const r = parseRecord(rec, this.cut);
        this.carry = [];
        this.carryLen = 0;
        this.cut = false;
        from = nl + 1;
        if (r) each(r);
      }
      if (from < n) this.take(Buffer.from(this.buf.subarray(from, n)));
    }
    return total;
  }

  private take(b: Buffer): void {
    const room = RECORD_MAX - this.carryLen;
    if (b.length > room) {
      this.cut = true;
      b = b.subarray(0, Math.max(0, room));
    }
    if (b.length === 0) return;
    this.carry.push(b);
    this.carryLen += b.length;
  }

  /** The bytes after the last newline as a record (a file that will not grow: rotated, or a snapshot read). */
  rest(): LogRecord | undefined {
    if (this.carryLen === 0) return undefined;
    const r = parseRecord(Buffer.concat(this.carry, this.carryLen), this.cut);
    this.carry = [];
    this.carryLen = 0;
    this.cut = false;
    return r;
  }

  /** Starts again at the beginning (the file was truncated under it). */
  restart(): void {
    this.offset = 0;
    this.carry = [];
    this.carryLen = 0;
    this.cut = false;
  }
}

/**
 * Where a tail of `n` lines starts: scans the files' records backwards (their
 * headers only) until it has passed the ends of `n` lines of the selected
 * streams, then on until each selected stream with a line among them has
 * shown the end of the line before, so that none of them starts before the
 * point. A line still open at the end (its stream's newest record is
 * partial) is the last of all, as a full read gives it: the scan goes on
 * until it has seen every selected stream's newest record, and the start of
 * any open line. Lines that end before the point are read too; the ring drops them.
 */
function tailStart(files: LogFile[], n: number, selected: (s: LogStream) => boolean): { file: number; offset: number } {
  if (n === 0) return files.length ? { file: files.length - 1, offset: sizeOf((files.at(-1) as LogFile).fd) } : { file: 0, offset: 0 };
  const wanted = LOG_STREAMS.filter(selected);
  let count = 0;
  let counting = true;
  let point = { file: 0, offset: 0 };
  const seen = new Set<LogStream>();
  const unresolved = new Set<LogStream>();
  const buf = Buffer.allocUnsafe(CHUNK);
  const head = Buffer.allocUnsafe(HEADER_MAX);
  for (let fi = files.length - 1; fi >= 0; fi--) {
    const fd = (files[fi] as LogFile).fd;
    /** one record, ending at `end`: true when the start point is found */
    const record = (hb: Buffer, end: number): boolean => {
      const h = parseHeader(hb);
      if (!h) return false;
      const s = h.stream;
      const newest = !seen.has(s);
      seen.add(s);
      if (counting) {
        if ((!h.partial || newest) && selected(s) && ++count >= n) {
          counting = false;
          for (const x of seen) if (selected(x)) unresolved.add(x);
        }
        return false;
      }
      if (newest && h.partial && selected(s)) unresolved.add(s);
      else if (!h.partial && unresolved.delete(s) && unresolved.size === 0) point = { file: fi, offset: end };
      return unresolved.size === 0 && wanted.every((x) => seen.has(x));
    };
    let recEnd = sizeOf(fd);
    let pos = recEnd;
    while (pos > 0) {
      const cs = Math.max(0, pos - CHUNK);
      const len = fs.readSync(fd, buf, 0, pos - cs, cs);
      const last = buf.lastIndexOf(0x0a, len - 1);
      let stop = -1; // the newlines down to this one are looked at one by one
      if (!counting && unresolved.size === 0 && last >= 0) {
        // only a stream not seen yet matters now: a chunk without its name holds none of its records (but the
        // record after the chunk's last newline, whose header may run on past the chunk, is looked at anyway)
        const chunk = buf.subarray(0, len);
        if (!wanted.some((x) => !seen.has(x) && chunk.includes(` ${x} `))) stop = last;
      }
      for (let i = last; i >= 0 && i >= stop; i = i > 0 ? buf.lastIndexOf(0x0a, i - 1) : -1) {
        const start = cs + i + 1;
        if (start < recEnd) {
          const inBuf = Math.min(recEnd, cs + len) - start;
          const hb =
            inBuf >= HEADER_MAX || recEnd <= cs + len
              ? buf.subarray(i + 1, i + 1 + Math.min(inBuf, HEADER_MAX))
              : readAt(fd, head, start, recEnd);
          if (record(hb, recEnd)) return point;
        }
        recEnd = start;
      }
      if (stop >= 0) recEnd = cs + buf.indexOf(0x0a) + 1;
      pos = cs;
    }
    if (recEnd > 0 && record(readAt(fd, head, 0, recEnd), recEnd)) return point;
  }
  return !counting && unresolved.size === 0 ? point : { file: 0, offset: 0 };
}

function readAt(fd: number, into: Buffer, at: number, end: number): Buffer {
  const n = fs.readSync(fd, into, 0, Math.min(into.length, end - at), at);
  return into.subarray(0, Math.max(0, n));
}

/** The last `n` items pushed. */
class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;
  constructor(private readonly n: number) {}
  push(x: T): void {
    if (this.n === 0) return;
    if (this.items.length < this.n) this.items.push(x);
    else {
      this.items[this.head] = x;
      this.head = (this.head + 1) % this.n;
    }
  }
  drain(): T[] {
    const out = [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
    this.items.length = 0;
    this.head = 0;
    return out;
  }
}

function checkOptions(o: LogReadOptions): void {
  if (o.tail !== undefined && (!Number.isInteger(o.tail) || o.tail < 0 || o.tail > TAIL_MAX))
    throw new PaeneError('invalid-argument', `the tail must be a whole number from 0 to ${TAIL_MAX}, got ${o.tail}`);
  if (o.since !== undefined && !Number.isFinite(o.since.getTime())) throw new PaeneError('invalid-argument', 'since: not a valid time');
  for (const s of o.streams ?? [])
    if (!LOG_STREAMS.includes(s)) throw new PaeneError('invalid-argument', `no log stream '${s}' (${LOG_STREAMS.join(', ')})`);
}

/** The lines of a log directory now: all, or the last `tail`, from `since`, of some streams. A missing directory has none. */
export function readLog(dir: string, opts: LogReadOptions = {}): AsyncGenerator<LogLine> {
  return lines(dir, opts, false);
}

/**
 * The lines of a log directory now (as readLog), then each new one as it is
 * written, across rotations, until the signal aborts or the caller returns.
 * A directory or file not there yet is waited for.
 */
export function followLog(dir: string, opts: LogFollowOptions = {}): AsyncGenerator<LogLine> {
  return lines(dir, opts, true);
}

async function* lines(dir: string, opts: LogFollowOptions, follow: boolean): AsyncGenerator<LogLine> {
  checkOptions(opts);
  const streams = opts.streams && opts.streams.length > 0 ? new Set(opts.streams) : undefined;
  const selected = (s: LogStream) => streams === undefined || streams.has(s);
  const sinceMs = opts.since?.getTime();
  let ring = opts.tail !== undefined ? new Ring<LogLine>(opts.tail) : undefined;
  const joiner = new LineJoiner();
  let out: LogLine[] = [];
  const onRecord = (r: LogRecord) => {
    if (!selected(r.stream)) return;
    const line = joiner.push(r);
    if (line) emit(line);
  };
  const emit = (line: LogLine) => {
    if (sinceMs !== undefined && line.ms < sinceMs) return;
    if (ring) ring.push(line);
    else out.push(line);
  };
  const take = () => {
    const o = out;
    out = [];
    return o;
  };

  let files = openLogFiles(dir);
  const opened = new Set(files.map((f) => f.fd));
  let cursor: RecordCursor | undefined;
  try {
    const start = opts.tail !== undefined ? tailStart(files, opts.tail, selected) : { file: 0, offset: 0 };
    for (let fi = start.file; fi < files.length; fi++) {
      cursor = new RecordCursor(files[fi] as LogFile, fi === start.file ? start.offset : 0);
      while (cursor.pump(onRecord) > 0) yield* take();
      if (fi < files.length - 1) {
        const r = cursor.rest(); // a rotated file is done: a torn last record is all there is of it
        if (r) onRecord(r);
      }
    }
    if (!follow) {
      const r = cursor?.rest();
      if (r) onRecord(r);
      for (const line of joiner.flush()) emit(line);
      yield* take();
      if (ring) yield* ring.drain();
      return;
    }
    const tail = ring?.drain() ?? [];
    ring = undefined; // from here on every line goes straight out
    yield* tail;
    yield* take();
    const signal = opts.signal;
    const pollMs = opts.pollMs ?? 200;
    for (;;) {
      if (signal?.aborted) return;
      let read = 0;
      if (cursor) {
        read = cursor.pump(onRecord);
        yield* take();
        if (read > 0) continue;
        if (sizeOf(cursor.file.fd) < cursor.offset) {
          cursor.restart(); // truncated in place
          continue;
        }
      }
      // Rotated? main.log is another file now: finish ours, then the newer ones in order.
      const now = inodeOf(path.join(dir, LOG_FILE));
      if (now !== undefined && now !== cursor?.file.ino) {
        if (cursor) {
          while (cursor.pump(onRecord) > 0) yield* take();
          const r = cursor.rest();
          if (r) onRecord(r);
          yield* take();
        }
        const next = openLogFiles(dir);
        for (const f of next) opened.add(f.fd);
        const mine = cursor ? next.findIndex((f) => f.ino === cursor?.file.ino) : -1;
        // ours is still there (rotated): the files after it; gone (no rotated file kept): the new main.log; none yet: all
        const newer = !cursor ? next : mine >= 0 ? next.slice(mine + 1) : next.filter((f) => f.name === LOG_FILE);
        const last = newer.at(-1);
        if (last) {
          for (const f of newer.slice(0, -1)) {
            const c = new RecordCursor(f, 0);
            while (c.pump(onRecord) > 0) yield* take();
            const r = c.rest();
            if (r) onRecord(r);
            yield* take();
          }
          for (const f of files) closeOnce(f.fd, opened);
          files = [last];
          cursor = new RecordCursor(last, 0);
        }
        for (const f of next) if (f !== last) closeOnce(f.fd, opened);
        if (last) continue;
      }
      try {
        await sleep(pollMs, undefined, signal ? { signal } : undefined);
      } catch {
        return; // aborted
      }
    }
  } finally {
    for (const fd of opened) fs.closeSync(fd);
    opened.clear();
  }
}

function closeOnce(fd: number, opened: Set<number>): void {
  if (opened.delete(fd)) fs.closeSync(fd);
}

function inodeOf(p: string): number | undefined {
  try {
    return fs.statSync(p).ino;
  } catch {
    return undefined;
  }
}

/** One line for output: its content (with `timestamps`, after its time) and a newline. */
export function formatLogLine(line: LogLine, timestamps = false): Buffer {
  const nl = Buffer.from('\n');
  return timestamps ? Buffer.concat([Buffer.from(`${line.time} `), line.content, nl]) : Buffer.concat([line.content, nl]);
}

/** One line as JSON (the content decoded as UTF-8, invalid bytes replaced). */
export function logLineJson(line: LogLine): { time: string; stream: LogStream; line: string; truncated?: true } {
  return {
    time: line.time,
    stream: line.stream,
    line: line.content.toString('utf8'),
    ...(line.truncated ? { truncated: true as const } : {}),
  };
}

const SPAN_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `--since T`: an RFC 3339 time (2026-12-07T02:40:00Z, with fractions or an
 * offset; a date alone is its midnight UTC), or a duration before `now`
 * (90s, 10m, 2h, 1d, 1h30m).
 */
export function parseSince(v: string, now: Date = new Date()): Date {
  const t = v.trim();
  if (/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) {
    let ms = 0;
    for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * (SPAN_UNITS[m[2] as string] as number);
    return new Date(now.getTime() - ms);
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(t) || /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})$/.test(t)) {
    const ms = Date.parse(t.replace(' ', 'T').replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
    if (Number.isFinite(ms)) return new Date(ms);
  }
  throw new PaeneError(
    'invalid-argument',
    `since: want an RFC 3339 time (2026-12-07T02:40:00Z) or a duration before now (10m, 2h, 1h30m), got '${v}'`,
  );
}

/** The read options of the CLI's flags and the API's query words: `tail` (a count or all), `since`, `stream` (comma-separated). */
export function logOptions(o: { tail?: string; since?: string; stream?: string }, now: Date = new Date()): LogReadOptions {
  const streams = o.stream?.split(',').map((s) => s.trim());
  for (const s of streams ?? [])
    if (!LOG_STREAMS.includes(s as LogStream))
      throw new PaeneError('invalid-argument', `stream: want ${LOG_STREAMS.join(', ')} (comma-separated), got '${s}'`);
  return {
    ...(o.tail !== undefined && o.tail !== 'all' ? { tail: parseCount(o.tail, 'tail', 0, TAIL_MAX) } : {}),
    ...(o.since !== undefined ? { since: parseSince(o.since, now) } : {}),
    ...(streams ? { streams: streams as LogStream[] } : {}),
  };
}
