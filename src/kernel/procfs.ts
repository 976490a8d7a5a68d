// Readers for /proc. Every function tolerates a process vanishing under it
// (returns undefined) because processes die while we look.

import fs from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks since boot when the process started: with pid, identifies a process across pid reuse. */
  starttime: number;
  utime: number;
  stime: number;
  rssPages: number;
}

export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseStat(text);
}

/** Parses /proc/PID/stat; comm may contain spaces and parentheses, so split at the last ')'. */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) return undefined;
  const f = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // f[0] is field 3 (state); field N is f[N-3]
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: f[0],
    ppid: Number(f[1]),
    utime: Number(f[11]),
    stime: Number(f[12]),
    starttime: Number(f[19]),
    rssPages: Number(f[21]),
  };
}

/** True if `pid` is alive (not a zombie) and is the same process that started at `starttime`. */
export function isAlive(pid: number, starttime?: number): boolean {
  const st = readStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return starttime === undefined || st.starttime === starttime;
}

export function readStatusField(pid: number, field: string): string | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const line = text.split('\n').find((l) => l.startsWith(field + ':'));
    return line?.slice(field.length + 1).trim();
  } catch {
    return undefined;
  }
}

/** The pid as seen inside the innermost pid namespace of the process (NSpid's last entry). */
export function innerPid(pid: number): number | undefined {
  const v = readStatusField(pid, 'NSpid');
  if (!v) return undefined;
  const parts = v.split(/\s+/);
  return Number(parts[parts.length - 1]);
}

export function cmdline(pid: number): string[] {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '');
    return raw === '' ? [] : raw.split('\0');
  } catch {
    return [];
  }
}

export function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
}

/** A process's memory from smaps_rollup: resident and proportional set (bytes), and its name; undefined if it is gone. */
export function processMemory(pid: number): { rss: number; pss: number; comm: string } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    return { rss: kb('Rss'), pss: kb('Pss'), comm };
  } catch {
    return undefined;
  }
}
