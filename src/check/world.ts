// A world the check or bench makes for itself, so that egress is tried
// without the host's real uplink: a network namespace H plays the host (paene
// runs in it: its CLI, its monitor, the shared contexts' stack, the egress
// pool's link and NAT) and a second one U plays the uplink and the internet
// (a router at UPLINK_PEER, servers at BEYOND). Nothing of the machine's own
// interfaces, routes or firewall is touched, and no packet leaves it.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nativePath } from '../kernel/helper.js';
import { openRuntime } from '../runtime/open.js';

/** The address of a server "on the internet" (TEST-NET-3), on U's loopback. */
export const BEYOND = '203.0.113.10';
/** The world's DNS responder (on U's loopback, beside BEYOND): see `World.serveNames`. */
export const RESOLVER = '203.0.113.53';
/** H's address on the uplink veth: what the NAT makes a context's source. */
export const UPLINK_HOST = '172.31.251.1';
const UPLINK_PEER = '172.31.251.2';
/** The egress pool the world's paene root gets (a private range no route of H overlaps). */
export const WORLD_POOL = '10.79.0.0/24';

export interface CliRun {
  code: number | null;
  out: string;
}

export class World {
  readonly h: string;
  readonly u: string;
  /** the scratch state root paene runs with in H */
  readonly root: string;
  /** every scratch root (the first is `root`; `addRoot` makes more) */
  readonly roots: string[] = [];
  private readonly procs: ChildProcess[] = [];

  private constructor(tag: string) {
    const id = `${tag}-${process.pid}`;
    this.h = `paene-${id}-h`;
    this.u = `paene-${id}-u`;
    this.root = this.addRoot(tag);
  }

  /** One more scratch state root, removed by `close`. */
  addRoot(tag: string): string {
    const r = fs.mkdtempSync(path.join(os.tmpdir(), `paene-${tag}-root-`));
    this.roots.push(r);
    return r;
  }

  /** Makes H and U and the uplink between them; on failure removes what it made. */
  static make(tag: string): World {
    const w = new World(tag);
    try {
      for (const ns of [w.h, w.u]) must(['ip', 'netns', 'add', ns]);
      // veth names are host-wide only while they are made: the pid keeps two runs apart
      const [vh, vu] = [`paene-wh${process.pid % 100000}`, `paene-wu${process.pid % 100000}`];
      for (const s of [
        ['ip', 'link', 'add', vh, 'netns', w.h, 'type', 'veth', 'peer', 'name', vu, 'netns', w.u],
        ['ip', '-n', w.h, 'link', 'set', 'lo', 'up'],
        ['ip', '-n', w.u, 'link', 'set', 'lo', 'up'],
        ['ip', '-n', w.h, 'addr', 'add', `${UPLINK_HOST}/30`, 'dev', vh],
        ['ip', '-n', w.u, 'addr', 'add', `${UPLINK_PEER}/30`, 'dev', vu],
        ['ip', '-n', w.h, 'link', 'set', vh, 'up'],
        ['ip', '-n', w.u, 'link', 'set', vu, 'up'],
        ['ip', '-n', w.u, 'addr', 'add', `${BEYOND}/32`, 'dev', 'lo'],
        ['ip', '-n', w.h, 'route', 'add', 'default', 'via', UPLINK_PEER],
      ])
        must(s);
    } catch (e) {
      w.removeNamespaces();
      fs.rmSync(w.root, { recursive: true, force: true });
      throw e;
    }
    return w;
  }

  /** A command in namespace `ns`, waited for. */
  run(ns: string, argv: string[], input?: string | Buffer, timeoutMs = 120_000): CliRun {
    const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { encoding: 'utf8', input, timeout: timeoutMs });
    return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
  }

  /** `paene --root ROOT ARGS` as the host H runs it (`root`: another of the world's roots). */
  paene(args: string[], input?: string | Buffer, root = this.root): CliRun {
    return this.run(this.h, [nativePath('paene'), '--root', root, ...args], input);
  }

  /** The same, or throws with its output. */
  must(args: string[], input?: string | Buffer, root = this.root): string {
    const r = this.paene(args, input, root);
    if (r.code !== 0) throw new Error(`paene ${args.join(' ')}: ${r.out}`);
    return r.out;
  }

  /** The same, not waited for (the clients of a benchmark run one after the other, but a suite may race). */
  paeneAsync(args: string[], timeoutMs = 300_000, root = this.root): Promise<CliRun> {
    return new Promise((resolve) => {
      const c = spawn('nsenter', [`--net=/run/netns/${this.h}`, '--', nativePath('paene'), '--root', root, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.on('close', (code) => {
        clearTimeout(t);
        resolve({ code, out: out.trim() });
      });
    });
  }

  /** A process left running in `ns` (a server, a witness); ended by pid at `close`. Its stdout lines go to `lines`. */
  background(ns: string, argv: string[], lines?: string[]): ChildProcess {
    const p = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['ignore', lines ? 'pipe' : 'ignore', 'ignore'] });
    if (lines) collectLines(p, lines);
    this.procs.push(p);
    return p;
  }

  /**
   * A DNS responder at RESOLVER in U: A records for `names` (name -> IPv4), NXDOMAIN for any other name, an
   * empty answer for another type of a known name. Resolves once it answers (`paene net settings --dns RESOLVER`).
   */
  async serveNames(names: Record<string, string>): Promise<void> {
    const r = this.run(this.u, ['ip', 'addr', 'add', `${RESOLVER}/32`, 'dev', 'lo']);
    if (r.code !== 0) throw new Error(`ip addr add ${RESOLVER}: ${r.out}`);
    const lines: string[] = [];
    this.background(this.u, [process.execPath, '-e', dnsResponder(names)], lines);
    for (let i = 0; i < 100 && !lines.includes('ready'); i++) await new Promise((res) => setTimeout(res, 50));
    if (!lines.includes('ready')) throw new Error(`the DNS responder at ${RESOLVER} did not start`);
  }

  /** Destroys the roots' contexts, stops their monitors, ends the processes it started, removes both namespaces and the root. What was left over (paene links or tables in H) is returned. */
  async close(): Promise<string[]> {
    const left: string[] = [];
    try {
      for (const root of this.roots) {
        const dir = path.join(root, 'contexts');
        if (fs.existsSync(dir) && fs.readdirSync(dir).some((n) => !n.startsWith('.')))
          this.paene(['destroy', '--force', '--all'], undefined, root);
      }
      left.push(...this.leftovers());
      for (const root of this.roots) await openRuntime(root).shutdownMonitor(); // they run in H
    } finally {
      for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      this.removeNamespaces();
      for (const root of this.roots) fs.rmSync(root, { recursive: true, force: true });
    }
    return left;
  }

  /** paene links and nft tables in H (the world's host). */
  leftovers(): string[] {
    return paeneLeftIn(this.h);
  }

  private removeNamespaces(): void {
    for (const ns of [this.h, this.u]) spawnSync('ip', ['netns', 'delete', ns]);
  }
}

/**
 * The runtime's links (paene*, pn*, pNn*) and nft tables left in the network
 * namespace `ns`; the links a world or a test made there (paene-w*, paene-t*)
 * are theirs, not the runtime's.
 */
export function paeneLeftIn(ns: string): string[] {
  const ip = spawnSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' });
  const links = (JSON.parse(ip.stdout || '[]') as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => /^(paene|pn|p\d+n)/.test(n) && !/^paene-[wt]/.test(n));
  const tables = spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.includes('paene'));
  return [...links.map((l) => `link ${l}`), ...tables];
}

/** The source of a one-file DNS responder (node) for `names`: it prints 'ready' once bound. */
function dnsResponder(names: Record<string, string>): string {
  const table = Object.fromEntries(Object.entries(names).map(([n, a]) => [n.toLowerCase(), a.split('.').map(Number)]));
  return `
const table = ${JSON.stringify(table)};
const s = require('node:dgram').createSocket('udp4');
s.on('message', (q, r) => {
  let i = 12; const name = [];
  while (i < q.length && q[i]) { name.push(q.subarray(i + 1, i + 1 + q[i]).toString()); i += q[i] + 1; }
  if (i + 5 > q.length) return;
  const qend = i + 5, type = q.readUInt16BE(i + 1), addr = table[name.join('.').toLowerCase()];
  const h = Buffer.from(q.subarray(0, 12));
  const answer = addr !== undefined && type === 1;
  h.writeUInt16BE(0x8180 | (addr !== undefined ? 0 : 3), 2); h.writeUInt16BE(answer ? 1 : 0, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  const ans = answer ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...addr]) : Buffer.alloc(0);
  s.send(Buffer.concat([h, q.subarray(12, qend), ans]), r.port, r.address);
});
s.bind(53, '${RESOLVER}', () => console.log('ready'));
`;
}

/** Appends each whole line a child prints to `lines` as it comes. */
export function collectLines(p: ChildProcess, lines: string[]): void {
  let buf = '';
  p.stdout?.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
}

function must(argv: string[]): void {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
}
