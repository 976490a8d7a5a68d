import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LINE_MAX,
  type LogLine,
  type LogStream,
  followLog,
  formatLogLine,
  logLineJson,
  parseSince,
  readLog,
} from '../../src/runtime/logs.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-logs-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A record at second `s` (2026-12-07T02:40:00Z + s). */
function rec(s: number, stream: LogStream, tag: 'F' | 'P', content: string): string {
  const t = new Date(Date.UTC(2026, 11, 7, 2, 40, 0) + s * 1000).toISOString().replace('Z', '123456Z');
  return `${t} ${stream} ${tag} ${content}\n`;
}

function write(name: string, ...records: string[]): void {
  fs.writeFileSync(path.join(dir, name), records.join(''));
}
function append(name: string, ...records: string[]): void {
  fs.appendFileSync(path.join(dir, name), records.join(''));
}

async function all(it: AsyncIterable<LogLine>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(l.content.toString());
  return out;
}

/** Collects a follow's lines until `want` have come (or the timeout). */
function collector(opts: Parameters<typeof followLog>[1] = {}) {
  const ac = new AbortController();
  const got: LogLine[] = [];
  const done = (async () => {
    for await (const l of followLog(dir, { pollMs: 20, ...opts, signal: ac.signal })) got.push(l);
  })();
  const waitFor = async (want: number, ms = 5000) => {
    const end = Date.now() + ms;
    while (got.length < want && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    return got.map((l) => l.content.toString());
  };
  return { got, waitFor, stop: async () => (ac.abort(), done) };
}

describe('reading a log', () => {
  it('gives the lines as written, partial records joined per stream', async () => {
    write(
      'main.log',
      rec(0, 'stdout', 'F', 'one'),
      rec(1, 'stdout', 'P', 'tw'),
      rec(1, 'stderr', 'F', 'err'),
      rec(2, 'stdout', 'F', 'o'),
      rec(3, 'stdout', 'F', ''),
      rec(4, 'console', 'F', 'with  spaces '),
    );
    expect(await all(readLog(dir))).toEqual(['one', 'err', 'two', '', 'with  spaces ']);
    expect(await all(readLog(dir, { streams: ['stderr'] }))).toEqual(['err']);
    const lines: LogLine[] = [];
    for await (const l of readLog(dir, { tail: 1 })) lines.push(l);
    expect(formatLogLine(lines[0] as LogLine, true).toString()).toBe('2026-12-07T02:40:04.000123456Z with  spaces \n');
    expect(formatLogLine(lines[0] as LogLine).toString()).toBe('with  spaces \n');
    expect(logLineJson(lines[0] as LogLine)).toEqual({ time: '2026-12-07T02:40:04.000123456Z', stream: 'console', line: 'with  spaces ' });
  });

  it('keeps the bytes the program wrote (not UTF-8, control characters)', async () => {
    const raw = Buffer.from([0xff, 0xfe, 0x1b, 0x5b, 0x32, 0x4a, 0x00]);
    fs.writeFileSync(
      path.join(dir, 'main.log'),
      Buffer.concat([Buffer.from(rec(0, 'stdout', 'F', '').slice(0, -1)), raw, Buffer.from('\n')]),
    );
    const lines: LogLine[] = [];
    for await (const l of readLog(dir)) lines.push(l);
    expect(lines[0]?.content).toEqual(raw);
  });

  it('is nothing for a missing directory or an empty log, and skips lines that are no records', async () => {
    expect(await all(readLog(path.join(dir, 'nope')))).toEqual([]);
    expect(await all(readLog(path.join(dir, 'nope'), { tail: 10 }))).toEqual([]);
    write('main.log');
    expect(await all(readLog(dir, { tail: 3 }))).toEqual([]);
    write(
      'main.log',
      'garbage\n',
      rec(0, 'stdout', 'F', 'ok'),
      'not a 2026-12-07T02:40:00Z stdout F record\n',
      rec(1, 'bogus' as LogStream, 'F', 'x'),
    );
    expect(await all(readLog(dir))).toEqual(['ok']);
  });

  it('reads the rotated files first, oldest first, a line split across a rotation joined', async () => {
    write('main.log.2', rec(0, 'stdout', 'F', 'a'));
    write('main.log.1', rec(1, 'stdout', 'F', 'b'), rec(2, 'stdout', 'P', 'c1-'));
    write('main.log', rec(3, 'stdout', 'F', 'c2'), rec(4, 'stdout', 'F', 'd'));
    write('main.log.x', rec(0, 'stdout', 'F', 'not a log file'));
    expect(await all(readLog(dir))).toEqual(['a', 'b', 'c1-c2', 'd']);
    expect(await all(readLog(dir, { tail: 2 }))).toEqual(['c1-c2', 'd']);
    expect(await all(readLog(dir, { tail: 3 }))).toEqual(['b', 'c1-c2', 'd']);
    expect(await all(readLog(dir, { tail: 100 }))).toEqual(['a', 'b', 'c1-c2', 'd']);
    expect(await all(readLog(dir, { tail: 0 }))).toEqual([]);
  });

  it('tails by lines, a line of many partial records counting once', async () => {
    const records = [rec(0, 'stdout', 'F', 'first')];
    for (let i = 0; i < 50; i++) records.push(rec(1, 'stdout', 'P', `${i},`));
    records.push(rec(1, 'stderr', 'F', 'between'));
    records.push(rec(2, 'stdout', 'F', 'end'));
    write('main.log', ...records);
    const joined = `${Array.from({ length: 50 }, (_, i) => `${i},`).join('')}end`;
    expect(await all(readLog(dir, { tail: 1 }))).toEqual([joined]);
    expect(await all(readLog(dir, { tail: 2 }))).toEqual(['between', joined]);
    expect(await all(readLog(dir, { tail: 1, streams: ['stderr'] }))).toEqual(['between']);
  });

  it('a line still open at the end is shown as it is', async () => {
    write('main.log', rec(0, 'stdout', 'F', 'a'), rec(1, 'stdout', 'P', 'half'));
    expect(await all(readLog(dir))).toEqual(['a', 'half']);
    expect(await all(readLog(dir, { tail: 1 }))).toEqual(['half']);
  });

  it('filters by time', async () => {
    write('main.log.1', rec(0, 'stdout', 'F', 'a'), rec(60, 'stdout', 'F', 'b'));
    write('main.log', rec(120, 'stdout', 'F', 'c'), rec(180, 'stdout', 'F', 'd'));
    const since = new Date(Date.UTC(2026, 11, 7, 2, 41, 0));
    expect(await all(readLog(dir, { since }))).toEqual(['b', 'c', 'd']);
    expect(await all(readLog(dir, { since, tail: 2 }))).toEqual(['c', 'd']);
    expect(await all(readLog(dir, { since: new Date(Date.UTC(2027, 0, 1)) }))).toEqual([]);
  });

  it('cuts a huge line at LINE_MAX and reads a big log within bounds', async () => {
    const piece = 'x'.repeat(64 * 1024);
    const records = [rec(0, 'stdout', 'F', 'before')];
    for (let i = 0; i < 48; i++) records.push(rec(1, 'stdout', 'P', piece)); // 3 MiB
    records.push(rec(2, 'stdout', 'F', 'tail-of-huge'));
    records.push(rec(3, 'stdout', 'F', 'after'));
    write('main.log', ...records);
    const lines: LogLine[] = [];
    for await (const l of readLog(dir, { tail: 2 })) lines.push(l);
    expect(lines.length).toBe(2);
    expect(lines[0]?.content.length).toBe(LINE_MAX);
    expect(lines[0]?.truncated).toBe(true);
    expect(lines[1]?.content.toString()).toBe('after');
    // one record longer than a line may be (not what paene-log writes, but a file can hold it)
    write('main.log', rec(0, 'stdout', 'F', 'y'.repeat(3 * LINE_MAX)), rec(1, 'stdout', 'F', 'next'));
    const big: LogLine[] = [];
    for await (const l of readLog(dir)) big.push(l);
    expect(big.map((l) => l.content.length)).toEqual([LINE_MAX, 4]);
    expect(big[0]?.truncated).toBe(true);
  });

  it('tails a long log without reading it from the start', async () => {
    const lines = Array.from({ length: 200_000 }, (_, i) => rec(i % 1000, i % 3 === 0 ? 'stderr' : 'stdout', 'F', `line ${i}`));
    write('main.log', lines.join(''));
    const t0 = performance.now();
    expect(await all(readLog(dir, { tail: 3 }))).toEqual(['line 199997', 'line 199998', 'line 199999']);
    expect(await all(readLog(dir, { tail: 2, streams: ['stderr'] }))).toEqual(['line 199995', 'line 199998']);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('tails as a full read would, on random logs (interleaved partials, rotations, stream filters)', async () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const streams: LogStream[] = ['stdout', 'stderr', 'console'];
    for (let round = 0; round < 60; round++) {
      for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
      const files: string[][] = [[]];
      const n = 1 + rnd(40);
      for (let i = 0; i < n; i++) {
        if (rnd(8) === 0) files.push([]);
        (files.at(-1) as string[]).push(rec(i, streams[rnd(3)] as LogStream, rnd(3) === 0 ? 'P' : 'F', `r${i}`));
      }
      files.forEach((f, i) => write(i === files.length - 1 ? 'main.log' : `main.log.${files.length - 1 - i}`, ...f));
      const sel = rnd(3) === 0 ? [streams[rnd(3)] as LogStream] : undefined;
      const full = await all(readLog(dir, { streams: sel }));
      for (const t of [1, 2, 3, 5, 8, 50]) expect(await all(readLog(dir, { tail: t, streams: sel }))).toEqual(full.slice(-t));
    }
  });
});

describe('following a log', () => {
  it('gives the tail, then new lines as they come, across rotations, and ends on abort', async () => {
    write('main.log', rec(0, 'stdout', 'F', 'old1'), rec(1, 'stdout', 'F', 'old2'));
    const c = collector({ tail: 1 });
    expect(await c.waitFor(1)).toEqual(['old2']);
    append('main.log', rec(2, 'stdout', 'P', 'par'), rec(2, 'stdout', 'F', 'tial'));
    expect(await c.waitFor(2)).toEqual(['old2', 'partial']);
    // a record written in two pieces (the writer mid-write) waits for its newline
    fs.appendFileSync(path.join(dir, 'main.log'), rec(3, 'stdout', 'F', 'torn').slice(0, 20));
    await new Promise((r) => setTimeout(r, 80));
    expect(c.got.length).toBe(2);
    fs.appendFileSync(path.join(dir, 'main.log'), rec(3, 'stdout', 'F', 'torn').slice(20));
    expect(await c.waitFor(3)).toEqual(['old2', 'partial', 'torn']);
    // rotation: the last lines of the old file, a line split across it, then the new file
    append('main.log', rec(4, 'stdout', 'F', 'last-in-old'), rec(5, 'stderr', 'P', 'split-'));
    fs.renameSync(path.join(dir, 'main.log'), path.join(dir, 'main.log.1'));
    write('main.log', rec(6, 'stderr', 'F', 'across'), rec(7, 'stdout', 'F', 'new1'));
    expect(await c.waitFor(6)).toEqual(['old2', 'partial', 'torn', 'last-in-old', 'split-across', 'new1']);
    // two rotations between looks: the file in the middle is read too
    fs.renameSync(path.join(dir, 'main.log.1'), path.join(dir, 'main.log.2'));
    fs.renameSync(path.join(dir, 'main.log'), path.join(dir, 'main.log.1'));
    append('main.log.1', rec(8, 'stdout', 'F', 'new2'));
    fs.renameSync(path.join(dir, 'main.log.2'), path.join(dir, 'main.log.3'));
    fs.renameSync(path.join(dir, 'main.log.1'), path.join(dir, 'main.log.2'));
    write('main.log.1', rec(9, 'stdout', 'F', 'middle'));
    write('main.log', rec(10, 'stdout', 'F', 'newest'));
    expect((await c.waitFor(9)).slice(6)).toEqual(['new2', 'middle', 'newest']);
    await c.stop();
    append('main.log', rec(11, 'stdout', 'F', 'after stop'));
    await new Promise((r) => setTimeout(r, 60));
    expect(c.got.length).toBe(9);
  });

  it('follows a rotation that keeps no old file, and a file truncated in place', async () => {
    write('main.log', rec(0, 'stdout', 'F', 'a'));
    const c = collector();
    expect(await c.waitFor(1)).toEqual(['a']);
    fs.rmSync(path.join(dir, 'main.log'));
    write('main.log', rec(1, 'stdout', 'F', 'b'));
    expect(await c.waitFor(2)).toEqual(['a', 'b']);
    fs.truncateSync(path.join(dir, 'main.log'), 0);
    await new Promise((r) => setTimeout(r, 60));
    append('main.log', rec(2, 'stdout', 'F', 'c'));
    expect(await c.waitFor(3)).toEqual(['a', 'b', 'c']);
    await c.stop();
  });

  it('waits for a log directory that is not there yet', async () => {
    fs.rmSync(dir, { recursive: true });
    const c = collector();
    await new Promise((r) => setTimeout(r, 60));
    expect(c.got).toEqual([]);
    fs.mkdirSync(dir);
    write('main.log', rec(0, 'stdout', 'F', 'hello'));
    expect(await c.waitFor(1)).toEqual(['hello']);
    await c.stop();
  });

  it('with tail 0 shows only what comes', async () => {
    write('main.log', rec(0, 'stdout', 'F', 'old'));
    const c = collector({ tail: 0 });
    await new Promise((r) => setTimeout(r, 60));
    append('main.log', rec(1, 'stdout', 'F', 'new'));
    expect(await c.waitFor(1)).toEqual(['new']);
    await c.stop();
  });
});

describe('--since', () => {
  const now = new Date('2026-12-07T03:00:00Z');
  it('takes RFC 3339 times and durations before now', () => {
    expect(parseSince('2026-12-07T02:40:01Z').toISOString()).toBe('2026-12-07T02:40:01.000Z');
    expect(parseSince('2026-12-07T02:40:01.5+01:00').toISOString()).toBe('2026-12-07T01:40:01.500Z');
    expect(parseSince('2026-12-07').toISOString()).toBe('2026-12-07T00:00:00.000Z');
    expect(parseSince('10m', now).toISOString()).toBe('2026-12-07T02:50:00.000Z');
    expect(parseSince('1h30m', now).toISOString()).toBe('2026-12-07T01:30:00.000Z');
    expect(parseSince('2d', now).toISOString()).toBe('2026-12-05T03:00:00.000Z');
    expect(parseSince('90s', now).toISOString()).toBe('2026-12-07T02:58:30.000Z');
  });
  it('refuses anything else', () => {
    for (const bad of ['', 'yesterday', '10', '-5m', '2026-13-45T00:00:00Z', '2026-12-07T02:40:01'])
      expect(() => parseSince(bad, now)).toThrow(/since: want/);
  });
});
