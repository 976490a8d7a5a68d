// `paene bench overhead`: the paper's micro-benchmark table. The same static
// program (src/native/tools/paene-bench.c) runs on the host and inside a context;
// each repetition runs every benchmark once on each side, the side that goes
// first alternating between repetitions; reported are medians over the
// repetitions and the ratio context/host (of time per operation: > 1 means
// slower in the context).
//
// Where the files live: on the host in the scratch directory (ext4 or whatever
// holds it); in the context under /var/tmp, i.e. in its overlay's private
// layer on the same file system: the overlay is part of what is measured.
// The tool itself is copied into the context's /usr/local/bin (also the
// overlay), so fork+exec execs it through the overlay.
//
// HTTP: busybox httpd (the image's binary) serves a small page; the client
// (paene-bench http: N sequential HTTP/1.0 GETs, one connection each) runs
// in a second context against a server in the first, and on the host against
// the same httpd binary run on the host.

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { nativePath } from '../kernel/helper.js';
import { openImageStore, openRuntime, storeImageSource } from '../runtime/open.js';
import { keepRootOffEgress } from '../runtime/network.js';
import { Cleanup, type MachineFacts, httpGet, machineFacts, median, round, run, sleep } from './common.js';
import { DEFAULT_IMAGE } from '../image/store.js';

export interface OverheadOptions {
  dir: string;
  keepDir?: boolean;
  reps: number;
  /** multiplies every iteration count (1 = the documented counts; tests use less) */
  scale?: number;
  log?: (s: string) => void;
  progress?: (done: number, total: number, detail: string) => void;
}

export interface MicroResult {
  name: string;
  what: string;
  unit: string;
  iterations: string;
  host: number[];
  context: number[];
  hostMedian: number;
  contextMedian: number;
  /** context / host, of time per operation (> 1: slower in the context) */
  ratio: number;
}

export interface OverheadResult {
  benchmark: 'overhead';
  machine: MachineFacts;
  reps: number;
  scale: number;
  results: MicroResult[];
  cleanup: { errors: string[] };
}

interface Micro {
  name: string;
  what: string;
  unit: string;
  /** argv after the program, given the directory for scratch files */
  args: (dir: string) => string[];
  iterations: string;
  /** higher is better (a rate): the ratio is inverted so it stays time-like */
  rate?: boolean;
}

/** The host's httpd listens here; the context's on the address paene assigned it (filled in at setup). */
const SERVER_ADDR = { context: '', host: '127.78.0.2' };
const PORT = 8080;

function micros(scale: number): Micro[] {
  const n = (x: number) => Math.max(1, Math.round(x * scale));
  return [
    { name: 'fork-exit', what: 'fork + _exit + waitpid', unit: 'us', args: () => ['fork-exit', String(n(1000))], iterations: `${n(1000)}` },
    {
      name: 'fork-exec',
      what: 'fork + execve of a static program + wait',
      unit: 'us',
      args: () => ['fork-exec', String(n(300))],
      iterations: `${n(300)}`,
    },
    {
      name: 'sh-true',
      what: 'fork + exec /bin/sh -c true + wait',
      unit: 'us',
      args: () => ['sh-true', String(n(200))],
      iterations: `${n(200)}`,
    },
    {
      name: 'pipe-ctx',
      what: 'pipe ping-pong, 2 processes on one CPU, per switch',
      unit: 'us',
      args: () => ['pipe-ctx', String(n(20000))],
      iterations: `${n(20000)} round trips`,
    },
    {
      name: 'reread',
      what: 're-read a 64 MiB file from the page cache',
      unit: 'ms',
      args: (d) => ['reread', path.join(d, 'bench-reread'), '64', String(n(10))],
      iterations: `${n(10)} reads`,
    },
    {
      name: 'mmap',
      what: 'mmap a 32 MiB file, touch each page, munmap',
      unit: 'ms',
      args: (d) => ['mmap', path.join(d, 'bench-mmap'), '32', String(n(20))],
      iterations: `${n(20)} maps`,
    },
  ];
}

/** The value of a paene-bench line `NAME VALUE UNIT`. */
export function parseValue(out: string, name: string): number {
  const m = new RegExp(`^${name} ([0-9.]+) `, 'm').exec(out);
  if (!m) throw new Error(`paene-bench ${name} printed no result: ${out.trim().slice(0, 200)}`);
  return Number(m[1]);
}

export async function runOverhead(o: OverheadOptions): Promise<OverheadResult> {
  const log = o.log ?? (() => undefined);
  const scale = o.scale ?? 1;
  const cleanup = new Cleanup(log);
  fs.mkdirSync(o.dir, { recursive: true });
  const stateRoot = path.join(o.dir, 'state');
  keepRootOffEgress(stateRoot); // nothing added to the host's network
  const hostDir = path.join(o.dir, 'host');
  const wwwDir = path.join(o.dir, 'www');
  const rt = openRuntime(stateRoot);
  const tool = nativePath('paene-bench');
  let server: ChildProcess | undefined;
  cleanup.add('remove the scratch directory', () => {
    if (!o.keepDir) fs.rmSync(o.dir, { recursive: true, force: true });
  });
  cleanup.add('stop the monitor', () => rt.shutdownMonitor());
  cleanup.add('destroy the contexts', async () => {
    for (const n of rt.store.names()) await rt.destroy(n, { force: true });
  });
  cleanup.add('stop the host httpd', async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      const gone = new Promise((r) => server?.once('exit', r));
      server.kill('SIGKILL');
      await gone;
    }
  });
  const results: MicroResult[] = [];
  let cleanupErrors: string[] = [];
  try {
    const rootfs = await storeImageSource(openImageStore(stateRoot)).rootfsOf(DEFAULT_IMAGE);
    fs.mkdirSync(hostDir, { recursive: true });
    fs.mkdirSync(wwwDir, { recursive: true });
    fs.writeFileSync(path.join(wwwDir, 'index.html'), 'paene bench\n');
    const [srv, cli] = ['ov-server', 'ov-client'];
    for (const n of [srv, cli]) {
      await rt.create({ name: n, image: DEFAULT_IMAGE, hostname: n });
      await rt.start(n);
      const r = await rt.execCapture(n, ['/bin/sh', '-c', 'cat > /usr/local/bin/paene-bench && chmod 755 /usr/local/bin/paene-bench'], {
        input: fs.readFileSync(tool),
        timeoutMs: 30_000,
      });
      if (r.code !== 0) throw new Error(`cannot copy paene-bench into ${n}: ${r.stderr}`);
    }
    SERVER_ADDR.context = rt.config(srv).net.addresses[0] ?? '127.0.0.1';
    const up = await rt.execCapture(
      srv,
      ['/bin/sh', '-c', `echo 'paene bench' > /www/index.html && busybox httpd -p ${SERVER_ADDR.context}:${PORT} -h /www`],
      { timeoutMs: 30_000 },
    );
    if (up.code !== 0) throw new Error(`httpd in ${srv} did not start: ${up.stderr}`);
    server = spawn(path.join(rootfs, 'bin/busybox'), ['httpd', '-f', '-p', `${SERVER_ADDR.host}:${PORT}`, '-h', wwwDir], {
      stdio: 'ignore',
    });
    for (const addr of [SERVER_ADDR.context, SERVER_ADDR.host]) {
      for (let i = 0; ; i++) {
        try {
          await httpGet(addr, PORT, 2000);
          break;
        } catch (e) {
          if (i > 100) throw new Error(`httpd on ${addr}:${PORT} does not answer: ${e instanceof Error ? e.message : String(e)}`);
          await sleep(20);
        }
      }
    }
    const httpN = Math.max(10, Math.round(500 * scale));
    const list: Micro[] = [
      ...micros(scale),
      {
        name: 'http',
        what: 'loopback HTTP GETs, sequential, one connection each (busybox httpd)',
        unit: 'req/s',
        rate: true,
        args: () => [],
        iterations: `${httpN} requests`,
      },
    ];
    const hostRun = async (m: Micro): Promise<number> => {
      const args = m.name === 'http' ? ['http', SERVER_ADDR.host, String(PORT), String(httpN)] : m.args(hostDir);
      const r = await run(tool, args, { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`host: paene-bench ${args.join(' ')} failed: ${r.stderr.trim()}`);
      return parseValue(r.stdout, m.name);
    };
    const ctxRun = async (m: Micro): Promise<number> => {
      const args = m.name === 'http' ? ['http', SERVER_ADDR.context, String(PORT), String(httpN)] : m.args('/var/tmp');
      const r = await rt.execCapture(m.name === 'http' ? cli : srv, ['/usr/local/bin/paene-bench', ...args], { timeoutMs: 300_000 });
      if (r.code !== 0) throw new Error(`context: paene-bench ${args.join(' ')} failed: ${r.stderr.trim()}`);
      return parseValue(r.stdout, m.name);
    };
    const host = new Map<string, number[]>(list.map((m) => [m.name, []]));
    const ctx = new Map<string, number[]>(list.map((m) => [m.name, []]));
    const total = o.reps * list.length;
    let done = 0;
    for (let rep = 0; rep < o.reps; rep++) {
      for (const m of list) {
        if (rep % 2 === 0) {
          host.get(m.name)?.push(await hostRun(m));
          ctx.get(m.name)?.push(await ctxRun(m));
        } else {
          ctx.get(m.name)?.push(await ctxRun(m));
          host.get(m.name)?.push(await hostRun(m));
        }
        o.progress?.(++done, total, m.name);
      }
    }
    for (const m of list) {
      const h = host.get(m.name) ?? [];
      const c = ctx.get(m.name) ?? [];
      const hm = median(h);
      const cm = median(c);
      results.push({
        name: m.name,
        what: m.what,
        unit: m.unit,
        iterations: m.iterations,
        host: h.map((x) => round(x, 3)),
        context: c.map((x) => round(x, 3)),
        hostMedian: round(hm, 3),
        contextMedian: round(cm, 3),
        ratio: round(m.rate ? hm / cm : cm / hm, 3),
      });
    }
  } finally {
    cleanupErrors = await cleanup.run();
  }
  return { benchmark: 'overhead', machine: machineFacts(), reps: o.reps, scale, results, cleanup: { errors: cleanupErrors } };
}
