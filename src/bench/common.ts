// What every benchmark shares: machine facts, /proc/meminfo, statistics,
// a loopback HTTP probe, and a cleanup list that also runs on Ctrl-C.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { detectCgroupHost } from '../cgroups/cgroups.js';

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memTotalBytes: number;
  kernel: string;
  cgroupLayout: string;
  node: string;
  date: string;
}

export function machineFacts(): MachineFacts {
  let layout = 'unknown';
  try {
    const h = detectCgroupHost();
    layout = h.layout === 'hybrid' ? `hybrid (v1 controllers + cgroup2 at ${h.unified?.mount})` : h.layout;
  } catch {
    /* not Linux: reported as unknown */
  }
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memTotalBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    cgroupLayout: layout,
    node: process.version,
    date: new Date().toISOString(),
  };
}

export function formatMachine(m: MachineFacts): string {
  return `machine: ${m.cores} cores (${m.cpuModel}), ${(m.memTotalBytes / 2 ** 30).toFixed(1)} GiB, ${m.kernel}, cgroups ${m.cgroupLayout}, node ${m.node}`;
}

/** /proc/meminfo in bytes. */
export function meminfo(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of fs.readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^([^:]+):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * (line.endsWith('kB') ? 1024 : 1);
  }
  return out;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1];
}

/** Least-squares slope of y over x (bytes per context for memory curves). */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** GET http://HOST:PORT/ over loopback; resolves to the body, rejects on any error or non-200. */
export function httpGet(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode} from ${host}:${port}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Runs a host program; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(
  file: string,
  args: string[],
  opts: { timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: opts.timeoutMs ?? 60_000, cwd: opts.cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code !== 0 && !stderr ? err.message : '') });
    });
  });
}

export function dirBytes(dir: string): number {
  // Allocated bytes (like du), counting each inode once.
  const seen = new Set<string>();
  let total = 0;
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(p);
      } catch {
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      if (!seen.has(key)) {
        seen.add(key);
        total += st.blocks * 512;
      }
      if (e.isDirectory()) walk(p);
    }
  };
  try {
    total += fs.lstatSync(dir).blocks * 512;
  } catch {
    return 0;
  }
  walk(dir);
  return total;
}

/**
 * Cleanup steps that run once: at the end, on failure, and on SIGINT/SIGTERM
 * (the handler runs them, then exits with 130/143).
 */
export class Cleanup {
  private steps: { what: string; fn: () => Promise<void> | void }[] = [];
  private ran = false;
  /** set when a signal started the cleanup: loops stop at their next step */
  interrupted = false;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.interrupted = true;
    process.stderr.write(`\n${sig}: cleaning up what the benchmark started...\n`);
    void this.run().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  constructor(private readonly log: (s: string) => void = () => undefined) {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }
  add(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }
  /** Runs every step, last added first; failures are logged, never thrown. */
  async run(): Promise<string[]> {
    if (this.ran) return [];
    this.ran = true;
    const errors: string[] = [];
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        const msg = `cleanup '${s.what}' failed: ${e instanceof Error ? e.message : String(e)}`;
        errors.push(msg);
        this.log(msg);
      }
    }
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
    return errors;
  }
}

export function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

export { setTimeout as sleep } from 'node:timers/promises';
