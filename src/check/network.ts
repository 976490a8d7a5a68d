// The network suite: escape attempts against a context's network wall, each
// judged from outside (a witness on the host or in another context says
// whether anything got through), and the admin cases that must work.
// `paene check network` and test/net/ use it. Every listener and context it
// makes is on 127.0.0.0/8 or inside namespaces of its own, and is removed.

import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import { hostIfOf, macOf, portPrefixOf } from '../net/bridgeplan.js';
import { reservedAddressOf } from '../net/model.js';
import { nativePath } from '../kernel/helper.js';
import { hostAddresses } from '../runtime/network.js';
import type { Runtime } from '../runtime/runtime.js';
import { DEFAULT_IMAGE } from '../image/store.js';
import { BEYOND, UPLINK_HOST, WORLD_POOL, World, collectLines } from './world.js';

export type NetVerdict = 'blocked' | 'ESCAPED' | 'works' | 'FAILED' | 'known gap' | 'not provable here';

export interface NetRow {
  mode: string;
  kind: 'escape' | 'admin';
  attempt: string;
  observed: string;
  verdict: NetVerdict;
}

const PROBE = '/tmp/net-probe';

/** A host TCP listener that records every connection it gets (the witness). */
async function hostTcp(host: string, port: number): Promise<{ hits: () => number; peers: () => string[]; close: () => Promise<void> }> {
  const peers: string[] = [];
  const open = new Set<net.Socket>();
  const srv = net.createServer((c) => {
    peers.push(c.remoteAddress ?? '?');
    open.add(c.on('close', () => open.delete(c)).on('error', () => undefined));
    c.end('host\n');
  });
  await new Promise<void>((res, rej) => srv.once('error', rej).listen(port, host, () => res()));
  const close = () =>
    new Promise<void>((r) => {
      srv.close(() => r());
      for (const c of open) c.destroy(); // close waits for every connection to end
    });
  return { hits: () => peers.length, peers: () => peers, close };
}

/** A host UDP client bound to `local` that asks host:port until answered (the server may still be starting); the answer's source or undefined. */
async function hostUdpAsk(local: string, host: string, port: number, connected: boolean): Promise<string | undefined> {
  const c = dgram.createSocket('udp4');
  await new Promise<void>((r) => c.bind(0, local, () => r()));
  if (connected) await new Promise<void>((r) => c.connect(port, host, () => r()));
  try {
    for (let i = 0; i < 30; i++) {
      const got = new Promise<string | undefined>((resolve) => {
        const t = setTimeout(() => resolve(undefined), 150);
        c.once('message', (_m, r) => {
          clearTimeout(t);
          resolve(r.address);
        });
      });
      if (connected) c.send('q');
      else c.send('q', port, host);
      const from = await got;
      if (from) return from;
    }
    return undefined;
  } finally {
    c.close();
  }
}

async function hostUdp(host: string, port: number): Promise<{ sources: () => string[]; close: () => void }> {
  const got: string[] = [];
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (_m, r) => got.push(r.address));
  await new Promise<void>((res, rej) => s.once('error', rej).bind(port, host, () => res()));
  return { sources: () => got, close: () => s.close() };
}

/** An abstract unix socket on the host; counts connections. */
async function hostAbstract(name: string): Promise<{ hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const srv = net.createServer((c) => {
    hits++;
    c.end();
  });
  await new Promise<void>((res, rej) => srv.once('error', rej).listen(`\0${name}`, () => res()));
  return { hits: () => hits, close: () => new Promise((r) => srv.close(() => r())) };
}

/** net-probe run on the host: the control that shows a witness can be reached at all. */
function hostProbe(args: string[]): string {
  const r = spawnSync(nativePath('net-probe'), args, { encoding: 'utf8', timeout: 10_000 });
  return (r.stdout ?? '').trim() || `exit ${r.status}`;
}

/** Can this process bind host:port now (TCP)? */
function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

function tcpAnswer(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host, port });
    let out = '';
    const t = setTimeout(() => c.destroy(new Error('timeout')), timeoutMs);
    c.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    c.on('close', () => {
      clearTimeout(t);
      resolve(out.trim());
    });
  });
}

/** A port per run (the suite may run beside another), above the usual ephemeral range's start. */
function basePort(): number {
  return 21000 + ((process.pid * 7) % 20000);
}

export interface NetSuiteOptions {
  prefix?: string;
  log?: (s: string) => void;
}

/** Contexts and host witnesses of one run; `close` removes all of them. */
class Fixture {
  private readonly made: string[] = [];
  private readonly closers: (() => unknown)[] = [];
  private readonly probe = fs.readFileSync(nativePath('net-probe'));
  constructor(
    readonly rt: Runtime,
    readonly prefix: string,
  ) {}

  async context(n: string, mode: 'shared' | 'private' | 'none'): Promise<string> {
    const name = `${this.prefix}-${n}`;
    if (this.rt.store.exists(name)) await this.rt.destroy(name, { force: true });
    await this.rt.create({ name, image: DEFAULT_IMAGE, net: { mode, addresses: [], publish: [] } });
    this.made.push(name);
    await this.rt.start(name);
    const r = await this.rt.execCapture(name, ['/bin/sh', '-c', `cat > ${PROBE} && chmod 755 ${PROBE}`], { input: this.probe });
    if (r.code !== 0) throw new Error(`cannot copy net-probe into ${name}: ${r.stderr}`);
    return name;
  }

  address(name: string): string {
    return this.rt.config(name).net.addresses[0] ?? '';
  }

  async probeIn(name: string, ...args: string[]): Promise<string> {
    const r = await this.rt.execCapture(name, [PROBE, ...args], { timeoutMs: 15_000 });
    return (r.stdout.trim() || r.stderr.trim() || `exit ${r.code}`).split('\n').pop() as string;
  }

  /**
   * An admin case against a server just started in the background: the probe
   * again until its answer matches (the server may still be starting), at
   * most ~5 s; the last answer either way.
   */
  async probeUntil(ok: RegExp, name: string, ...args: string[]): Promise<string> {
    let out = '';
    for (let i = 0; i < 50; i++) {
      out = await this.probeIn(name, ...args);
      if (ok.test(out)) break;
      await sleep(100);
    }
    return out;
  }

  /** A probe left running in the background (a server); ended by `close` at the latest. */
  background(name: string, ...args: string[]): Promise<unknown> {
    const p = this.rt.execCapture(name, [PROBE, ...args], { timeoutMs: 20_000 });
    this.closers.push(() => p);
    return p;
  }

  onClose(f: () => unknown): void {
    this.closers.push(f);
  }

  async close(): Promise<void> {
    for (const f of this.closers.reverse()) await Promise.resolve(f()).catch(() => undefined);
    for (const n of this.made.reverse()) await this.rt.destroy(n, { force: true }).catch(() => undefined);
  }
}

/** Waits until a TCP server answers (a probe server started in the background). */
async function untilServing(connect: () => Promise<string>, tries = 100): Promise<string> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await connect();
    } catch (e) {
      last = e;
      await sleep(50);
    }
  }
  throw new Error(`server did not come up: ${(last as Error)?.message}`);
}

const escaped = (yes: boolean): NetVerdict => (yes ? 'ESCAPED' : 'blocked');

/** Adds a row of one model to `rows` and logs it. */
function recorder(mode: string, rows: NetRow[], o: NetSuiteOptions) {
  return (kind: NetRow['kind'], attempt: string, observed: string, verdict: NetVerdict): void => {
    rows.push({ mode, kind, attempt, observed, verdict });
    o.log?.(`  ${verdict.padEnd(8)} ${attempt}: ${observed}`);
  };
}

/** A host abstract unix socket, the same probe on the host as control, then the attempt from inside. */
async function abstractAttempt(f: Fixture, ctx: string, tag: string): Promise<[string, NetVerdict]> {
  const name = `paene-netchk-${tag}-${process.pid}`;
  const w = await hostAbstract(name);
  const control = hostProbe(['abstract', name]); // the same probe on the host must get through
  for (let i = 0; i < 40 && w.hits() < 1; i++) await sleep(50); // its accept is counted once the loop runs
  const seen = w.hits();
  const out = await f.probeIn(ctx, 'abstract', name);
  await sleep(100);
  await w.close();
  const got = w.hits() - seen;
  const observed = `${out}; host got ${got} (the host's own probe: ${control})`;
  return [observed, control.startsWith('ok') ? escaped(got > 0 || out.startsWith('ok')) : 'not provable here'];
}
const works = (yes: boolean): NetVerdict => (yes ? 'works' : 'FAILED');

/** The shared model: walls on the host's stack. */
export async function sharedSuite(rt: Runtime, o: NetSuiteOptions = {}): Promise<NetRow[]> {
  const f = new Fixture(rt, o.prefix ?? 'netchk');
  const rows: NetRow[] = [];
  const row = recorder('shared', rows, o);
  let port = basePort();
  try {
    const a = await f.context('a', 'shared');
    const b = await f.context('b', 'shared');
    const [ipA, ipB] = [f.address(a), f.address(b)];
    const hostFace = reservedAddressOf(rt.network.settings().sharedPool4);

    // 1-3: the host's loopback services, directly, through a v4-mapped IPv6 address, and on another 127 address
    for (const [what, host, target] of [
      ['reach a host service on 127.0.0.1', '127.0.0.1', '127.0.0.1'],
      ['reach it as ::ffff:127.0.0.1 (dual-stack bypass)', '127.0.0.1', '::ffff:127.0.0.1'],
      ['reach a host service on 127.9.9.9 (another loopback address)', '127.9.9.9', '127.9.9.9'],
    ] as const) {
      const p = port++;
      const w = await hostTcp(host, p);
      const out = await f.probeIn(a, 'connect', target, String(p), 'x');
      await w.close();
      row('escape', what, `${out}; host listener got ${w.hits()} connection(s)`, escaped(w.hits() > 0 || /answer=host/.test(out)));
    }

    // 4: a host address that is not loopback and not published
    const hostIp = hostAddresses().find((x) => !x.startsWith('127.') && !x.includes(':'));
    if (hostIp) {
      const p = port++;
      const w = await hostTcp(hostIp, p);
      const out = await f.probeIn(a, 'connect', hostIp, String(p), 'x');
      await w.close();
      row(
        'escape',
        `reach a host service on its own address ${hostIp} (not published)`,
        `${out}; host listener got ${w.hits()}`,
        escaped(w.hits() > 0),
      );
    } else {
      row('escape', 'reach a host service on a non-loopback address', 'this host has no non-loopback IPv4 address', 'not provable here');
    }

    // 5: UDP to the host's loopback
    {
      const p = port++;
      const w = await hostUdp('127.0.0.1', p);
      const out = await f.probeIn(a, 'udp', '127.0.0.1', String(p), 'x');
      await sleep(100);
      w.close();
      row(
        'escape',
        'send UDP to a host service on 127.0.0.1',
        `${out}; host got ${w.sources().length} datagram(s)`,
        escaped(w.sources().length > 0),
      );
    }

    // 6: the host's abstract unix sockets (the containerd-shim CVE-2020-15257 class)
    row('escape', 'connect to a host abstract unix socket', ...(await abstractAttempt(f, a, 'shared')));

    // 7: another context's loopback
    {
      const p = port++;
      f.background(b, 'serve', '127.0.0.1', String(p), '6');
      await untilServing(() => tcpAnswer(ipB, p));
      const out = await f.probeIn(a, 'connect', '127.0.0.1', String(p), 'x');
      row('escape', "reach another context's 127.0.0.1 service", out, escaped(/hello from/.test(out)));
    }

    // 8-10: binds (judged from outside: getsockname inside shows what the program asked for)
    {
      const p = port++;
      f.background(a, 'serve', '127.0.0.1', String(p), '6');
      const ans = await untilServing(() => tcpAnswer(ipA, p)).catch((e: Error) => `error: ${e.message}`);
      const hostStill = await canBind('127.0.0.1', p);
      row(
        'escape',
        "bind the host's 127.0.0.1",
        `its server answers on ${ipA}:${p}: ${ans}; host can still bind 127.0.0.1:${p}: ${hostStill}`,
        escaped(!hostStill || !/hello from/.test(ans)),
      );
    }
    {
      const out = await f.probeIn(a, 'bind', ipB, String(port++));
      row('escape', `bind another context's address ${ipB}`, out, escaped(out.startsWith('ok')));
    }
    if (hostIp) {
      const out = await f.probeIn(a, 'bind', hostIp, String(port++));
      row('escape', `bind the host's address ${hostIp}`, out, escaped(out.startsWith('ok')));
    }
    {
      const p = port++;
      f.background(a, 'serve', '0.0.0.0', String(p), '6');
      await untilServing(() => tcpAnswer(ipA, p));
      const hostStill = await canBind('127.0.0.1', p);
      row(
        'escape',
        'a wildcard bind takes the port from the host',
        `the context serves on ${ipA}:${p}; the host binds 127.0.0.1:${p}: ${hostStill ? 'yes' : 'no'}`,
        escaped(!hostStill),
      );
    }

    // 11-13: raw and packet sockets, sock_diag
    for (const [what, cmd] of [
      ['sniff with a raw socket', 'raw'],
      ['sniff with a packet socket', 'packet'],
      ["list the host's sockets through sock_diag (ss)", 'sockdiag'],
    ] as const) {
      const out = await f.probeIn(a, cmd);
      row('escape', what, out, escaped(out.startsWith('ok')));
    }

    // 14: spoof a source address (IP_PKTINFO asking for the neighbour's address)
    {
      const p = port++;
      const w = await hostUdp(hostFace, p);
      const out = await f.probeIn(a, 'udp-spoof', ipB, hostFace, String(p), 'x');
      await sleep(100);
      w.close();
      const src = w.sources();
      row(
        'escape',
        `send UDP with the source address of another context (${ipB})`,
        `${out}; the host saw ${src.join(', ') || 'nothing'}`,
        escaped(src.includes(ipB)),
      );
    }

    // 15-17: sockets that never bind: the kernel picks their source at send or connect time
    {
      const p = port++;
      const w = await hostUdp(hostFace, p);
      const out1 = await f.probeIn(a, 'udp', hostFace, String(p), 'x'); // sendto, implicit bind
      const out2 = await f.probeIn(a, 'udp-connect', hostFace, String(p), 'x');
      await sleep(100);
      w.close();
      const src = w.sources();
      row(
        'escape',
        'send UDP without bind (sendto, then connect + send) with a source not its own',
        `${out1}; ${out2}; the host saw ${src.join(', ') || 'nothing'}`,
        src.length < 2 ? 'not provable here' : escaped(src.some((x) => x !== ipA)),
      );
    }
    {
      const p = port++;
      const w = await hostTcp(hostFace, p);
      const out = await f.probeIn(a, 'connect', hostFace, String(p), 'x');
      await w.close();
      const peers = w.peers();
      row(
        'escape',
        'TCP connect without bind with a source not its own',
        `${out}; the host saw ${peers.join(', ') || 'nothing'}`,
        peers.length === 0 ? 'not provable here' : escaped(peers.some((x) => x !== ipA)),
      );
    }

    // 18: the host's socket table through /proc/net (a known gap of the shared stack)
    {
      const p = port++;
      const w = await hostTcp('127.0.0.1', p);
      const hex = p.toString(16).toUpperCase().padStart(4, '0');
      const r = await rt.execCapture(a, ['/bin/sh', '-c', `grep -c ':${hex} ' /proc/net/tcp || true`]);
      await w.close();
      const seen = Number(r.stdout.trim()) > 0;
      row(
        'escape',
        "list the host's sockets through /proc/net/tcp",
        seen ? "the host listener is listed (the socket tables are the shared stack's)" : 'not listed',
        seen ? 'known gap' : 'blocked',
      );
    }

    // admin cases
    {
      const p = port++;
      f.background(a, 'serve', '0.0.0.0', String(p), '6');
      const ans = await untilServing(() => tcpAnswer(ipA, p)).catch((e: Error) => `error: ${e.message}`);
      row('admin', `serve on its own address (wildcard bind), reached from the host at ${ipA}`, ans, works(/hello from/.test(ans)));
      const out = await f.probeIn(b, 'connect', ipA, String(p), 'x');
      row(
        'admin',
        "reach a neighbour's service on its address; the neighbour sees the client's own address",
        out,
        works(new RegExp(`peer=${ipB.replace(/\./g, '\\.')}:`).test(out)),
      );
    }
    {
      const p = port++;
      f.background(a, 'serve', '127.0.0.1', String(p), '6');
      await untilServing(() => tcpAnswer(ipA, p));
      const out = await f.probeIn(a, 'connect', '127.0.0.1', String(p), 'x');
      row('admin', 'its own 127.0.0.1 reaches its own loopback service', out, works(/hello from/.test(out)));
    }
    {
      const p = port++;
      f.background(b, 'udp-echo', '0.0.0.0', String(p), '6');
      const out = await f.probeUntil(/answer=query/, a, 'udp', ipB, String(p), 'query');
      row('admin', 'a DNS-style UDP round trip to a neighbour', out, works(/answer=query/.test(out)));
      const plain = await hostUdpAsk('127.0.0.1', ipB, p, false);
      const conn = await hostUdpAsk('127.0.0.1', ipB, p, true);
      row(
        'admin',
        `a host UDP client on 127.0.0.1 gets the context's answers (unconnected, connected)`,
        `answers from ${plain ?? 'nothing'}, ${conn ?? 'nothing'}`,
        works(plain === ipB && conn === ipB),
      );
    }
  } finally {
    await f.close();
  }
  return rows;
}

/** Models with a namespace of their own: nothing of the host's loopback, sockets or abstract names. */
export async function isolatedSuite(rt: Runtime, mode: 'none' | 'private', o: NetSuiteOptions = {}): Promise<NetRow[]> {
  const f = new Fixture(rt, o.prefix ?? 'netchk');
  const rows: NetRow[] = [];
  const row = recorder(mode, rows, o);
  let port = basePort() + 500;
  try {
    const a = await f.context(`${mode}-a`, mode);
    {
      const p = port++;
      const w = await hostTcp('127.0.0.1', p);
      const out = await f.probeIn(a, 'connect', '127.0.0.1', String(p), 'x');
      const hex = p.toString(16).toUpperCase().padStart(4, '0');
      const r = await rt.execCapture(a, ['/bin/sh', '-c', `grep -c ':${hex} ' /proc/net/tcp || true`]);
      await w.close();
      row('escape', 'reach a host service on 127.0.0.1', `${out}; host got ${w.hits()}`, escaped(w.hits() > 0));
      row(
        'escape',
        "list the host's sockets through /proc/net/tcp",
        `${r.stdout.trim()} matching line(s)`,
        escaped(Number(r.stdout.trim()) > 0),
      );
    }
    row('escape', 'connect to a host abstract unix socket', ...(await abstractAttempt(f, a, mode)));
    for (const [what, cmd] of [
      ['sniff with a raw socket', 'raw'],
      ['sniff with a packet socket', 'packet'],
    ] as const) {
      const out = await f.probeIn(a, cmd);
      row('escape', what, out, escaped(out.startsWith('ok')));
    }
    {
      const p = port++;
      f.background(a, 'serve', '127.0.0.1', String(p), '6');
      const out = await f.probeUntil(/hello from/, a, 'connect', '127.0.0.1', String(p), 'x');
      row('admin', 'its own loopback works', out, works(/hello from/.test(out)));
    }
    if (mode === 'private') {
      rows.push(...(await privateReach(f, a, port, o)));
      rows.push(...(await privateSpoof(f, a, port + 20, o)));
    }
  } finally {
    await f.close();
  }
  return rows;
}

/** Private contexts: a service on the gateway, in the host-side namespace, is reachable. */
async function privateReach(f: Fixture, a: string, port: number, o: NetSuiteOptions): Promise<NetRow[]> {
  const rows: NetRow[] = [];
  const row = recorder('private', rows, o);
  const s = f.rt.network.settings();
  const gw = reservedAddressOf(s.bridge.subnet4);
  const ns = s.hostNetns;
  const hostSide = (args: string[]): ChildProcess =>
    ns
      ? spawn('nsenter', [`--net=${ns}`, '--', nativePath('net-probe'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(nativePath('net-probe'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (c: ChildProcess) =>
    new Promise<string>((resolve) => {
      let out = '';
      c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.on('close', () => resolve(out.trim()));
    });
  const p = port + 10;
  const server = hostSide(['serve', gw, String(p), '5']);
  const done = collect(server);
  try {
    const out = await f.probeUntil(/hello from/, a, 'connect', gw, String(p), 'x');
    row('admin', `reach a service on the gateway ${gw}`, out, works(/hello from/.test(out)));
  } finally {
    server.kill('SIGKILL');
    await done;
  }
  return rows;
}

/** Runs a command in a network namespace (the host's own when `ns` is undefined); its stdout, or throws. */
function inNetns(ns: string | undefined, argv: string[]): string {
  const full = ns ? ['nsenter', `--net=${ns}`, '--', ...argv] : argv;
  const r = spawnSync(full[0] as string, full.slice(1), { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) throw new Error(`${full.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
  return r.stdout;
}

/** A UDP datagram from `ns` to host:port, optionally from a given local address. */
function sendUdpFrom(ns: string, host: string, port: number, msg: string, local?: string): void {
  const bind = JSON.stringify(local ? { address: local } : {});
  inNetns(ns, [
    process.execPath,
    '-e',
    `const s=require('dgram').createSocket('udp4');s.bind(${bind},()=>s.send(${JSON.stringify(msg)},${port},${JSON.stringify(host)},e=>process.exit(e?1:0)));`,
  ]);
}

/**
 * Private contexts on their routed ports: one guest tries to pass as its
 * neighbour (IP, ARP and MAC spoofing), with the powers root has in a
 * namespace of its own (its addresses and MAC: NET_ADMIN there, which
 * paene's guests lack; the ports' filters must hold even for one that has
 * it). Judged from the host's side: a UDP witness on the gateway logs each
 * datagram's source, and the host's neighbour table says on which port it
 * knows the neighbour's address, with which MAC. "Nothing arrived" is
 * decided by a marker sent afterwards from the guest's own address on the
 * same path.
 */
async function privateSpoof(f: Fixture, a: string, port: number, o: NetSuiteOptions): Promise<NetRow[]> {
  const rows: NetRow[] = [];
  const row = recorder('private', rows, o);
  const s = f.rt.network.settings();
  const gw = reservedAddressOf(s.bridge.subnet4);
  const hostNs = s.hostNetns;
  const b = await f.context('private-b', 'private');
  const nsOf = (name: string) => `/proc/${f.rt.status(name).pid}/ns/net`;
  const [nsB, ipA, ipB] = [nsOf(b), f.address(a), f.address(b)];
  const macA = macOf(f.rt.config(a).xid);
  const macB = macOf(f.rt.config(b).xid);
  const witness = hostNs
    ? spawn('nsenter', [`--net=${hostNs}`, '--', process.execPath, '-e', udpLogger(gw, port)], { stdio: ['ignore', 'pipe', 'ignore'] })
    : spawn(process.execPath, ['-e', udpLogger(gw, port)], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines: string[] = [];
  collectLines(witness, lines);
  const until = async (cond: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await sleep(20);
    return cond();
  };
  /** The marker from B's own address, sent until it arrives (B's ARP entry for the gateway may need a moment after spoofing). */
  const marked = async (marker: string): Promise<boolean> => {
    for (let i = 0; i < 20; i++) {
      sendUdpFrom(nsB, gw, port, marker);
      if (await until(() => lines.includes(`${ipB} ${marker}`), 500)) return true;
    }
    return false;
  };
  const portA = hostIfOf(f.rt.config(a).xid, portPrefixOf(s.bridge));
  /** The host's neighbour entries for A's address: "PORT MAC" each; A's own is on its port with its MAC. */
  const neighA = (): string[] =>
    (JSON.parse(inNetns(hostNs, ['ip', '-j', 'neigh', 'show', ipA]) || '[]') as { dev?: string; lladdr?: string }[])
      .filter((n) => n.lladdr !== undefined)
      .map((n) => `${n.dev} ${n.lladdr}`);
  const notA = (): string[] => neighA().filter((n) => n !== `${portA} ${macA}`);
  const fromA = (msg: string) => lines.includes(`${ipA} ${msg}`);
  try {
    if (!(await until(() => lines.includes('ready'), 10_000))) throw new Error('the UDP witness on the gateway did not start');
    const control = await marked('control');
    if (!control) {
      row('escape', 'spoof a neighbour on its port (IP, ARP, MAC)', `B's own datagrams do not reach the gateway`, 'not provable here');
      return rows;
    }
    // IP: B takes A's address as a second one and sends from it (the gateway's MAC still known).
    inNetns(nsB, ['ip', 'addr', 'add', `${ipA}/32`, 'dev', 'eth0']);
    sendUdpFrom(nsB, gw, port, 'spoof-ip', ipA);
    inNetns(nsB, ['ip', 'addr', 'del', `${ipA}/32`, 'dev', 'eth0']);
    const m1 = await marked('marker-ip');
    row(
      'escape',
      `IP spoofing: a guest sends with its neighbour's address ${ipA}`,
      `the gateway saw ${fromA('spoof-ip') ? 'it' : 'nothing from ' + ipA}; B's marker after it ${m1 ? 'arrived' : 'lost'}`,
      m1 ? escaped(fromA('spoof-ip')) : 'not provable here',
    );
    // ARP: the same with the gateway's MAC forgotten: B's ARP request carries A's address as its sender.
    inNetns(nsB, ['ip', 'addr', 'add', `${ipA}/32`, 'dev', 'eth0']);
    inNetns(nsB, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
    sendUdpFrom(nsB, gw, port, 'spoof-arp', ipA);
    inNetns(nsB, ['ip', 'addr', 'del', `${ipA}/32`, 'dev', 'eth0']);
    const m2 = await marked('marker-arp');
    const claimed = notA();
    row(
      'escape',
      `ARP spoofing: a guest claims ${ipA} for its own MAC`,
      `the host knows ${ipA} as ${neighA().join(', ') || 'nothing'} (A is ${macA} on ${portA}); the gateway saw ${fromA('spoof-arp') ? 'a datagram from it' : 'nothing from it'}`,
      m2 ? escaped(claimed.length > 0 || fromA('spoof-arp')) : 'not provable here',
    );
    // MAC: B takes A's MAC; its port must not pass B's frames, and the host must not learn A's address elsewhere.
    inNetns(nsB, ['ip', 'link', 'set', 'dev', 'eth0', 'address', macA]);
    try {
      sendUdpFrom(nsB, gw, port, 'spoof-mac');
      await sleep(200);
    } finally {
      inNetns(nsB, ['ip', 'link', 'set', 'dev', 'eth0', 'address', macB]);
    }
    const m3 = await marked('marker-mac');
    const spoofed = lines.some((l) => l.endsWith(' spoof-mac'));
    const moved = notA();
    row(
      'escape',
      `MAC spoofing: a guest sends with its neighbour's MAC ${macA}`,
      `the host knows ${ipA} as ${neighA().join(', ') || 'nothing'} (A's port: ${portA}); the gateway saw ${spoofed ? 'the frame' : 'nothing'}`,
      m3 ? escaped(spoofed || moved.length > 0) : 'not provable here',
    );
  } finally {
    witness.kill('SIGKILL');
  }
  return rows;
}

/** A node one-liner: a UDP server on host:port printing "SOURCE MESSAGE" per datagram, and "ready". */
function udpLogger(host: string, port: number): string {
  return `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>console.log(r.address+' '+m));s.bind(${port},${JSON.stringify(host)},()=>console.log('ready'));setTimeout(()=>process.exit(0),60000);`;
}

/** Counts for a summary line. */
export function summarize(rows: NetRow[]): { escaped: number; blocked: number; gaps: number; adminFailed: number; adminWorked: number } {
  return {
    escaped: rows.filter((r) => r.verdict === 'ESCAPED').length,
    blocked: rows.filter((r) => r.verdict === 'blocked').length,
    gaps: rows.filter((r) => r.verdict === 'known gap' || r.verdict === 'not provable here').length,
    adminFailed: rows.filter((r) => r.verdict === 'FAILED').length,
    adminWorked: rows.filter((r) => r.verdict === 'works').length,
  };
}

/**
 * A witness in a world namespace: a node one-liner with a TCP server (prints
 * "tcp SOURCE" per connection and answers "beyond") and a UDP one (prints
 * "udp SOURCE MESSAGE" per datagram) on host:port each, then "ready".
 */
function worldWitness(host: string, tcpPort: number, udpPort: number): string {
  const h = JSON.stringify(host);
  return (
    `const net=require('net'),d=require('dgram');let n=0;const up=()=>{if(++n===2)console.log('ready')};` +
    `net.createServer(c=>{console.log('tcp '+c.remoteAddress);c.on('error',()=>{});c.end('beyond\\n')}).listen(${tcpPort},${h},up);` +
    `const s=d.createSocket('udp4');s.on('message',(m,r)=>console.log('udp '+r.address+' '+m));s.bind(${udpPort},${h},up);` +
    `setTimeout(()=>process.exit(0),300000);`
  );
}

/**
 * The egress walls (issue 25), judged from outside in a world the check
 * makes (src/check/world.ts): paene runs in a namespace H with an egress
 * pool; a witness beyond the uplink (in U) logs every connection and
 * datagram, witnesses on H's own addresses log theirs, and an nft table of
 * the check's in H counts what leaves for the witness by source address
 * before the NAT rewrites it (the witness beyond sees only H's address).
 */
export async function egressSuite(o: NetSuiteOptions = {}): Promise<NetRow[]> {
  const rows: NetRow[] = [];
  const row = recorder('egress', rows, o);
  const world = World.make('netchk-eg');
  const port = basePort() + 900;
  const [tcpBeyond, udpBeyond, hostSvc] = [port, port + 1, port + 2];
  const seen: string[] = [];
  const hostLines = new Map<string, string[]>();
  const hostLog = (addr: string): string[] => hostLines.get(addr) ?? [];
  const until = async (cond: () => boolean, ms: number) => {
    for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await sleep(20);
    return cond();
  };
  try {
    const prefix = o.prefix ?? 'netchk';
    const [a, b, c, p] = ['a', 'b', 'c', 'p'].map((x) => `${prefix}-eg-${x}`) as [string, string, string, string];
    world.must(['net', 'settings', '--egress-pool', WORLD_POOL]);
    const probe = fs.readFileSync(nativePath('net-probe'));
    for (const [name, args] of [
      [a, ['--egress', 'nat']],
      [b, ['--egress', 'nat']],
      [c, ['--egress', 'none']],
      [p, ['--net', 'private']],
    ] as const) {
      world.must(['create', name, ...args]);
      world.must(['start', name]);
      world.must(['exec', name, '--', '/bin/sh', '-c', `cat > ${PROBE} && chmod 755 ${PROBE}`], probe);
    }
    world.background(world.u, [process.execPath, '-e', worldWitness(BEYOND, tcpBeyond, udpBeyond)], seen);
    // the host's own services (the pool's face is there once a context of the pool runs): on its loopback, its face towards the pool, its uplink address (none published)
    const poolFace = reservedAddressOf(WORLD_POOL);
    for (const addr of ['127.0.0.1', poolFace, UPLINK_HOST]) {
      const lines: string[] = [];
      world.background(world.h, [process.execPath, '-e', worldWitness(addr, hostSvc, hostSvc)], lines);
      hostLines.set(addr, lines);
    }
    const addrOf = (n: string) =>
      (JSON.parse(world.must(['net', 'ls', '--json'])) as { name: string; addresses: string[] }[]).find((x) => x.name === n)
        ?.addresses[0] ?? '';
    const [ipA, ipB, ipP] = [addrOf(a), addrOf(b), addrOf(p)];
    const probeIn = (n: string, ...args: string[]): string => {
      const r = world.paene(['exec', n, '--', PROBE, ...args]);
      return r.out.split('\n').pop() ?? `exit ${r.code}`;
    };
    if (!(await until(() => seen.includes('ready') && [...hostLines.values()].every((l) => l.includes('ready')), 10_000)))
      throw new Error(
        `the witnesses of the egress world did not start: beyond ${seen.includes('ready')}, host ${[...hostLines].map(([k, l]) => `${k} ${l.includes('ready')}`).join(', ')}`,
      );
    const tcpFrom = () => seen.filter((l) => l.startsWith('tcp '));
    const udpFrom = (msg: string) => seen.filter((l) => l.startsWith('udp ') && l.endsWith(` ${msg}`)).map((l) => l.split(' ')[1]);

    // (a) out beyond the host, from the pool, NATed to H's address
    {
      const before = tcpFrom().length;
      const out = probeIn(a, 'connect', BEYOND, String(tcpBeyond), 'x');
      await until(() => tcpFrom().length > before, 2000);
      const got = tcpFrom().slice(before);
      row(
        'admin',
        `egress reaches beyond the host (${ipA} to ${BEYOND}:${tcpBeyond})`,
        `${out}; the server beyond saw ${got.map((l) => l.slice(4)).join(', ') || 'nothing'}`,
        works(/answer=beyond/.test(out) && got.length === 1 && got[0] === `tcp ${UPLINK_HOST}`),
      );
    }

    // (b) the host's own services: loopback, its face towards the pool, its uplink address
    for (const addr of ['127.0.0.1', poolFace, UPLINK_HOST]) {
      const out = probeIn(a, 'connect', addr, String(hostSvc), 'x');
      const out2 = probeIn(a, 'udp', addr, String(hostSvc), 'x');
      await sleep(100);
      const got = hostLog(addr).filter((l) => l !== 'ready');
      row(
        'escape',
        `reach a host service on ${addr} (TCP, UDP; not published)`,
        `${out} / ${out2}; the host's listener on ${addr} got ${got.length}`,
        escaped(got.length > 0),
      );
    }

    // (c) neighbours: a shared one's loopback service, a private one's unpublished port
    {
      const q = port + 3;
      const srv = world.paeneAsync(['exec', b, '--', PROBE, 'serve', '127.0.0.1', String(q), '6']);
      await sleep(500);
      const out = probeIn(a, 'connect', '127.0.0.1', String(q), 'x');
      const control = probeIn(b, 'connect', '127.0.0.1', String(q), 'x');
      row(
        'escape',
        `reach a neighbour's service on its own 127.0.0.1 (${b}, not published)`,
        `${out} (${b} itself: ${control})`,
        /hello from/.test(control) ? escaped(/hello from/.test(out)) : 'not provable here',
      );
      await srv;
    }
    {
      const q = port + 4;
      const srv = world.paeneAsync(['exec', p, '--', PROBE, 'serve', '0.0.0.0', String(q), '6']);
      await sleep(500);
      const out = probeIn(a, 'connect', ipP, String(q), 'x');
      row(
        'escape',
        `reach a private neighbour's unpublished port (${ipP}:${q}) from the egress pool`,
        out,
        escaped(/hello from/.test(out)),
      );
      await srv;
    }

    // (d) a spoofed source: counted by source in H before the NAT, and what arrives beyond
    {
      const table = `paene_chk_${process.pid}`;
      world.run(world.h, ['nft', '-f', '-'], spoofCounter(table, udpBeyond, [ipA, ipB]));
      const sends: [string, string[]][] = [
        ['its own address (the control)', ['udp', BEYOND, String(udpBeyond), 'own']],
        [`a neighbour's address ${ipB} (IP_PKTINFO)`, ['udp-spoof', ipB, BEYOND, String(udpBeyond), 'spoof-b']],
        [`an address of no context (198.51.100.7, IP_PKTINFO)`, ['udp-spoof', '198.51.100.7', BEYOND, String(udpBeyond), 'spoof-x']],
      ];
      const outs = sends.map(([, args]) => probeIn(a, ...args));
      const bound = probeIn(a, 'bind', ipB, String(port + 5));
      const raw = probeIn(a, 'raw');
      await until(() => udpFrom('own').length > 0, 2000);
      await sleep(200);
      const counts = spoofCounts(world.run(world.h, ['nft', '-j', 'list', 'table', 'inet', table]).out);
      world.run(world.h, ['nft', 'delete', 'table', 'inet', table]);
      const arrived = ['own', 'spoof-b', 'spoof-x'].map((m) => `${m}: ${udpFrom(m).join(',') || 'nothing'}`).join('; ');
      const observed = `probe: ${outs.join(' / ')}; leaving H by source: ${Object.entries(counts)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}; beyond: ${arrived}`;
      const control = (counts[ipA] ?? 0) > 0 && udpFrom('own').length > 0;
      row(
        'escape',
        `send beyond with a spoofed source (${sends
          .slice(1)
          .map(([w]) => w)
          .join('; ')})`,
        observed,
        control
          ? escaped((counts[ipB] ?? 0) > 0 || (counts.other ?? 0) > 0 || udpFrom('spoof-x').includes('198.51.100.7'))
          : 'not provable here',
      );
      row('escape', `bind a neighbour's address ${ipB} to send from it`, bound, escaped(bound.startsWith('ok')));
      row('escape', 'open a raw socket (to forge any header)', raw, escaped(raw.startsWith('ok')));
    }

    // (e) --egress none: nothing it sends arrives beyond; the same attempts after `net egress nat` do (the control)
    {
      const tcp0 = tcpFrom().length;
      const out = probeIn(c, 'connect', BEYOND, String(tcpBeyond), 'x');
      const out2 = probeIn(c, 'udp', BEYOND, String(udpBeyond), 'closed');
      await sleep(300);
      const got = tcpFrom().length - tcp0 + udpFrom('closed').length;
      world.must(['net', 'egress', c, 'nat']);
      const open = probeIn(c, 'connect', BEYOND, String(tcpBeyond), 'x');
      probeIn(c, 'udp', BEYOND, String(udpBeyond), 'reopened');
      await until(() => udpFrom('reopened').length > 0, 2000);
      const control = /answer=beyond/.test(open) && udpFrom('reopened').length > 0;
      row(
        'escape',
        `--egress none: send beyond (TCP connect, UDP)`,
        `${out} / ${out2}; the server beyond got ${got}; after net egress nat: ${open}`,
        control ? escaped(got > 0) : 'not provable here',
      );
    }
    const left = world.leftovers().filter((l) => !l.includes('paene_chk'));
    o.log?.(`  (world: paene links and tables in H while running: ${left.join(', ') || 'none'})`);
  } finally {
    const left = await world.close();
    if (left.length > 0) row('escape', 'nothing of paene left in the world after destroy', left.join(', '), 'ESCAPED');
  }
  return rows;
}

/** An nft table of the check's (in H only): UDP to the witness beyond counted per source, before the NAT (srcnat is 100). */
function spoofCounter(table: string, port: number, sources: string[]): string {
  const rules = sources.map((s) => `    ip daddr ${BEYOND} udp dport ${port} ip saddr ${s} counter comment "${s}"`).join('\n');
  return `table inet ${table} {\n  chain out {\n    type filter hook postrouting priority -200;\n${rules}\n    ip daddr ${BEYOND} udp dport ${port} ip saddr != { ${sources.join(', ')} } counter comment "other"\n  }\n}\n`;
}

function spoofCounts(json: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    const j = JSON.parse(json) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] };
    for (const x of j.nftables) if (x.rule?.comment) out[x.rule.comment] = x.rule.expr.find((e) => e.counter)?.counter?.packets ?? 0;
  } catch {
    // no table: no counts
  }
  return out;
}
