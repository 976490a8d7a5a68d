// Private networking on the real kernel, entirely inside namespaces this test
// makes (and deletes, also when it fails): the machine's own interfaces,
// routes and firewall are never touched, and no packet leaves the machine.
//
//   H  "host" namespace: the gateway's link paene0 and the routed ports live
//      here, paene's nft tables too
//   O  "outside": joined to H by a veth (10.99.0.0/24), no route to 10.88/16,
//      so a guest reaches it only through the masquerade, and O reaches a
//      guest only through a published port (prerouting DNAT)
//   A  guest 10.88.0.2, an `unshare --net` sleeper: given as /proc/PID/ns/net,
//      the form the runtime uses
//   B  guest 10.88.0.3, an `ip netns add` namespace
//   C  a namespace in which connectPrivate fails halfway (all-or-nothing)
//
// Servers and clients are node one-liners run under nsenter; every wait is
// bounded, and "gets no answer" is decided by a marker sent afterwards on the
// same path, not by a sleep.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_BRIDGE, PORT_GROUP, parsePublish, planPrivateNet, type PrivateNetPlan } from '../../src/net/bridgeplan.js';
import { isPaeneError } from '../../src/model/errors.js';
import {
  connectPrivate,
  disconnectPrivate,
  ensureBridge,
  leftovers,
  loadRuleset,
  type NetHost,
  removeBridgeIfUnused,
} from '../../src/net/bridge.js';
import { describeReal } from '../helpers.js';

const TAG = `paene-t-${process.pid}`;
const NS = { h: `${TAG}-h`, o: `${TAG}-o`, b: `${TAG}-b`, c: `${TAG}-c` };
const path = (n: string): string => `/run/netns/${n}`;
const H = path(NS.h);
const O = path(NS.o);
const B = path(NS.b);
const C = path(NS.c);
const host: NetHost = { hostNetns: H };
const cfg = DEFAULT_BRIDGE;

const children: ChildProcess[] = [];
let sleeperA: number | undefined;
let A = '';
let pa: PrivateNetPlan;
let pb: PrivateNetPlan;

/** Runs a command, in a namespace when given; throws with its stderr on failure. */
function sh(netns: string | undefined, argv: string[], input?: string): string {
  const full = netns === undefined ? argv : ['nsenter', `--net=${netns}`, '--', ...argv];
  const r = spawnSync(full[0] as string, full.slice(1), { encoding: 'utf8', input, timeout: 20_000 });
  if (r.status !== 0) throw new Error(`${full.join(' ')} → ${r.status}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function node(netns: string, script: string): { status: number | null; stdout: string } {
  const r = spawnSync('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout };
}

/** A TCP connection from `netns` (optionally from a given source address): the server's answer, or undefined after at most 2 s. */
function tcp(netns: string, hostAddr: string, port: number, localAddress?: string): string | undefined {
  const opts = JSON.stringify({ host: hostAddr, port, ...(localAddress ? { localAddress } : {}) });
  const r = node(
    netns,
    `const s=require('net').connect(${opts});let d='';s.setTimeout(2000,()=>process.exit(2));` +
      `s.on('data',x=>d+=x);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',()=>process.exit(1));`,
  );
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function udp(netns: string, hostAddr: string, port: number, msg: string, localAddress?: string): void {
  const bind = JSON.stringify(localAddress ? { address: localAddress } : {});
  const r = node(
    netns,
    `const s=require('dgram').createSocket('udp4');s.bind(${bind},()=>s.send(${JSON.stringify(msg)},${port},${JSON.stringify(hostAddr)},e=>process.exit(e?1:0)));`,
  );
  expect(r.status).toBe(0);
}

/** A server in `netns` that answers TCP with "NAME REMOTE" or logs UDP as "REMOTE MSG"; its output lines collect in `lines`. */
async function server(netns: string, proto: 'tcp' | 'udp', port: number, name: string): Promise<{ lines: string[] }> {
  const script =
    proto === 'tcp'
      ? `require('net').createServer(s=>{console.log('conn '+s.remoteAddress);s.end(${JSON.stringify(name)}+' '+s.remoteAddress+'\\n')}).listen(${port},'0.0.0.0',()=>console.log('ready'))`
      : `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>console.log(r.address+' '+m));s.bind(${port},'0.0.0.0',()=>console.log('ready'))`;
  const c = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  const lines: string[] = [];
  let buf = '';
  c.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  await until(() => lines.includes('ready'), `${name} server ready`);
  return { lines };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Sends `marker` from B (its own address) until the UDP server logs it, at
 * most 20 tries: after spoofing, B's entry for the gateway may be failing
 * and drop the first tries; what counts is that the marker gets through.
 */
async function marked(lines: string[], from: string, port: number, marker: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    udp(from, '10.88.0.1', port, marker);
    try {
      await until(() => lines.includes(`10.88.0.3 ${marker}`), marker, 500);
      return;
    } catch {
      // try again
    }
  }
  throw new Error(`${marker} never arrived`);
}

function json<T>(netns: string, argv: string[]): T {
  return JSON.parse(sh(netns, argv) || '[]') as T;
}

/** The host's ports: the links in paene's device group. */
function ports(): string[] {
  // iproute2 prints an empty object for each link the group filter leaves out
  return json<{ ifname?: string }[]>(H, ['ip', '-j', 'link', 'show', 'group', String(PORT_GROUP)])
    .flatMap((l) => (l.ifname !== undefined ? [l.ifname] : []))
    .sort();
}

/** The host's neighbour entries for an address, as "DEV MAC". */
function neigh(addr: string): string[] {
  return json<{ dev: string; lladdr?: string }[]>(H, ['ip', '-j', 'neigh', 'show', addr])
    .filter((n) => n.lladdr !== undefined)
    .map((n) => `${n.dev} ${n.lladdr}`)
    .sort();
}

function nsOf(pid: number | 'self'): string {
  return fs.readlinkSync(`/proc/${pid}/ns/net`);
}

describeReal('private network contexts on the real kernel (in test namespaces only)', () => {
  beforeAll(async () => {
    for (const n of Object.values(NS)) sh(undefined, ['ip', 'netns', 'add', n]);
    sh(H, ['ip', 'link', 'set', 'dev', 'lo', 'up']);
    sh(O, ['ip', 'link', 'set', 'dev', 'lo', 'up']);
    sh(H, ['ip', 'link', 'add', 'name', 'hx', 'type', 'veth', 'peer', 'name', 'ox', 'netns', O]);
    sh(H, ['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'hx']);
    sh(H, ['ip', 'link', 'set', 'dev', 'hx', 'up']);
    sh(O, ['ip', 'addr', 'add', '10.99.0.2/24', 'dev', 'ox']);
    sh(O, ['ip', 'link', 'set', 'dev', 'ox', 'up']);

    const s = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
    sleeperA = s.pid;
    if (sleeperA === undefined) throw new Error('cannot start unshare');
    const own = nsOf('self');
    await until(() => {
      try {
        return nsOf(sleeperA as number) !== own;
      } catch {
        return false;
      }
    }, 'the sleeper to enter its namespace');
    A = `/proc/${sleeperA}/ns/net`;

    pa = planPrivateNet(cfg, {
      name: 'a',
      xid: 7,
      address4: '10.88.0.2',
      publish: [parsePublish('18080:8080'), parsePublish('15353:5353/udp')],
    });
    pb = planPrivateNet(cfg, { name: 'b', xid: 8, address4: '10.88.0.3', publish: [] });
  });

  afterAll(() => {
    for (const c of children) if (c.pid !== undefined && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    if (sleeperA !== undefined) process.kill(sleeperA, 'SIGKILL');
    // Deleting the namespaces takes the bridge, the veths and the nft tables with them.
    for (const n of Object.values(NS)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    for (const n of Object.values(NS)) expect(fs.existsSync(path(n))).toBe(false);
  });

  it('brings up the gateway (idempotently) and connects two contexts: eth0 with address, MAC and default route; routed ports', () => {
    ensureBridge(host, cfg);
    ensureBridge(host, cfg);
    const br = json<{ addr_info: { family: string; local: string; prefixlen: number }[]; operstate: string; flags: string[] }[]>(H, [
      'ip',
      '-j',
      'addr',
      'show',
      'dev',
      'paene0',
    ])[0];
    expect(br?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.88.0.1/16']);
    expect(br?.flags).toContain('UP');
    expect(sh(H, ['cat', '/proc/sys/net/ipv4/ip_forward']).trim()).toBe('1');

    // Each port comes up only after the ruleset with its chain (and the others') is loaded.
    connectPrivate(host, cfg, pa, A, [pb]);
    connectPrivate(host, cfg, pb, B, [pa]);

    for (const [ns, p] of [
      [A, pa],
      [B, pb],
    ] as const) {
      const eth0 = json<{ address: string; flags: string[]; addr_info: { family: string; local: string; prefixlen: number }[] }[]>(ns, [
        'ip',
        '-j',
        'addr',
        'show',
        'dev',
        'eth0',
      ])[0];
      expect(eth0?.address).toBe(p.mac);
      expect(eth0?.flags).toContain('UP');
      expect(eth0?.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${p.address4}/16`]);
      const routes = json<{ dst: string; gateway?: string; dev: string }[]>(ns, ['ip', '-j', 'route', 'show', 'default']);
      expect(routes).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.88.0.1', dev: 'eth0' })]);
      const lo = json<{ flags: string[] }[]>(ns, ['ip', '-j', 'link', 'show', 'dev', 'lo'])[0];
      expect(lo?.flags).toContain('UP');
    }
    // Routed, not bridged: no port on paene0; each port has the gateway as a /32, the context's /32 route, proxy ARP.
    expect(ports()).toEqual(['pn7', 'pn8']);
    expect(json<unknown[]>(H, ['ip', '-j', 'link', 'show', 'master', 'paene0'])).toEqual([]);
    for (const p of [pa, pb]) {
      const port = json<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(H, [
        'ip',
        '-j',
        'addr',
        'show',
        'dev',
        p.hostIf,
      ])[0];
      expect(port?.addr_info.map((a) => `${a.family} ${a.local}/${a.prefixlen}`)).toEqual(['inet 10.88.0.1/32']);
      expect(json<{ dev: string; prefsrc?: string }[]>(H, ['ip', '-j', 'route', 'show', `${p.address4}/32`])).toEqual([
        expect.objectContaining({ dev: p.hostIf, prefsrc: '10.88.0.1' }),
      ]);
      expect(sh(H, ['cat', `/proc/sys/net/ipv4/conf/${p.hostIf}/proxy_arp`]).trim()).toBe('1');
      expect(sh(H, ['cat', `/proc/sys/net/ipv6/conf/${p.hostIf}/disable_ipv6`]).trim()).toBe('1');
    }
    expect(leftovers(host, cfg).sort()).toEqual([
      'bridge paene0',
      'nft table inet paene',
      'nft table netdev paene',
      'port pn7',
      'port pn8',
    ]);
  });

  it('connectPrivate is all-or-nothing: a failure halfway leaves no veth behind', async () => {
    // C already has a default route, so the last step (route add default) fails.
    sh(C, ['ip', 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
    sh(C, ['ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'd0']);
    sh(C, ['ip', 'link', 'set', 'dev', 'd0', 'up']);
    sh(C, ['ip', 'route', 'add', 'default', 'via', '10.77.0.2']);
    const pc = planPrivateNet(cfg, { name: 'c', xid: 9, address4: '10.88.0.4', publish: [] });
    let err: unknown;
    try {
      connectPrivate(host, cfg, pc, C, [pa, pb]);
    } catch (e) {
      err = e;
    }
    expect(isPaeneError(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/route add default/);
    expect(json<{ ifname: string }[]>(H, ['ip', '-j', 'link', 'show']).map((l) => l.ifname)).not.toContain('pn9');
    expect(
      json<{ ifname: string }[]>(C, ['ip', '-j', 'link', 'show'])
        .map((l) => l.ifname)
        .sort(),
    ).toEqual(['d0', 'd1', 'lo']);
    // A second connect of A fails (its port exists) and changes nothing.
    expect(() => connectPrivate(host, cfg, pa, A, [pb])).toThrow(/pn7/);
    expect(ports()).toEqual(['pn7', 'pn8']);
  });

  it('guests reach each other directly (proxy ARP, routed by the host) and the outside through the masquerade', async () => {
    await server(B, 'tcp', 7000, 'B');
    await server(O, 'tcp', 7000, 'O');
    expect(tcp(A, '10.88.0.3', 7000)).toBe('B 10.88.0.2');
    // A's neighbour entry for B is the port's MAC: the host answered for B, and B's frames never reach A.
    const portMac = json<{ address: string }[]>(H, ['ip', '-j', 'link', 'show', 'dev', 'pn7'])[0]?.address;
    expect(json<{ lladdr?: string }[]>(A, ['ip', '-j', 'neigh', 'show', '10.88.0.3'])[0]?.lladdr).toBe(portMac);
    // O has no route to 10.88/16: the answer arrives only because A's connection left as 10.99.0.1.
    expect(tcp(A, '10.99.0.2', 7000)).toBe('O 10.99.0.1');
    expect(tcp(B, '10.99.0.2', 7000)).toBe('O 10.99.0.1');
  });

  it('--publish: a server in A is reached on the host port from outside, from the host itself and from another guest', async () => {
    await server(A, 'tcp', 8080, 'A');
    const udpA = await server(A, 'udp', 5353, 'A-udp');
    // from outside (prerouting DNAT; the client's address is kept)
    expect(tcp(O, '10.99.0.1', 18080)).toBe('A 10.99.0.2');
    // from the host itself (output DNAT), to any of its addresses, loopback included
    expect(tcp(H, '10.88.0.1', 18080)).toMatch(/^A /);
    expect(tcp(H, '10.99.0.1', 18080)).toBe('A 10.99.0.1');
    expect(tcp(H, '127.0.0.1', 18080)).toBe('A 10.88.0.1');
    // from another guest through the gateway (hairpin, masqueraded so the reply returns through the host)
    expect(tcp(B, '10.88.0.1', 18080)).toBe('A 10.88.0.1');
    // a port that is not published is not forwarded
    expect(tcp(O, '10.99.0.1', 8080)).toBeUndefined();
    udp(O, '10.99.0.1', 15353, 'hello-udp');
    await until(() => udpA.lines.includes('10.99.0.2 hello-udp'), 'the published UDP datagram');
  });

  it('anti-spoofing: B cannot send as A, nor ARP-claim A’s address (and without paene’s filters it could)', async () => {
    const udpH = await server(H, 'udp', 9001, 'H-udp');
    const tcpH = await server(H, 'tcp', 7001, 'H');
    expect(tcp(B, '10.88.0.1', 7001)).toBe('H 10.88.0.3');
    expect(tcp(H, '10.88.0.2', 8080)).toBe('A 10.88.0.1');
    expect(neigh('10.88.0.2')).toEqual([`pn7 ${pa.mac}`]);

    // B takes A's address as a second one. With the gateway's MAC still
    // known, B sends IP packets from A's address; with it forgotten, B's ARP
    // request for the gateway carries A's address as its sender.
    const spoofIp = (msg: string): void => {
      sh(B, ['ip', 'addr', 'add', '10.88.0.2/32', 'dev', 'eth0']);
      udp(B, '10.88.0.1', 9001, msg, '10.88.0.2');
    };
    const spoofArp = (msg: string): void => {
      sh(B, ['ip', 'addr', 'add', '10.88.0.2/32', 'dev', 'eth0']);
      sh(B, ['ip', 'neigh', 'flush', 'dev', 'eth0']);
      udp(B, '10.88.0.1', 9001, msg, '10.88.0.2');
    };
    const stopSpoofing = async (marker: string): Promise<void> => {
      sh(B, ['ip', 'addr', 'del', '10.88.0.2/32', 'dev', 'eth0']);
      await marked(udpH.lines, B, 9001, marker);
    };

    spoofIp('spoof-ip');
    expect(tcp(B, '10.88.0.1', 7001, '10.88.0.2')).toBeUndefined();
    await stopSpoofing('marker-1');
    spoofArp('spoof-arp');
    await stopSpoofing('marker-2');
    // The markers came through on the same path after the spoofed packets: those were dropped.
    expect(udpH.lines.filter((l) => l.startsWith('10.88.0.2 '))).toEqual([]);
    expect(tcpH.lines).not.toContain('conn 10.88.0.2');
    expect(neigh('10.88.0.2')).toEqual([`pn7 ${pa.mac}`]); // the host learnt nothing of A's address from B
    expect(tcp(H, '10.88.0.1', 18080)).toMatch(/^A /);

    // Control: the same without paene's filters gets through, so the checks above measure them. (Reverse-path
    // filtering off, as a host may have it: it would drop some of the spoofed packets by itself.)
    sh(H, ['nft', 'delete', 'table', 'netdev', 'paene']);
    sh(H, ['sysctl', '-q', '-w', 'net/ipv4/conf/all/rp_filter=0', 'net/ipv4/conf/pn8/rp_filter=0']);
    spoofIp('spoof-ip-2');
    await stopSpoofing('marker-3');
    spoofArp('spoof-arp-2');
    await stopSpoofing('marker-4');
    expect(udpH.lines).toContain('10.88.0.2 spoof-ip-2');
    expect(udpH.lines).toContain('10.88.0.2 spoof-arp-2');
    expect(neigh('10.88.0.2')).toContain(`pn8 ${pb.mac}`); // without the filter B's ARP request made the host learn A's address at B
    loadRuleset(host, cfg, [pa, pb]);
    spawnSync('nsenter', [`--net=${H}`, '--', 'ip', 'neigh', 'del', '10.88.0.2', 'dev', 'pn8'], { stdio: 'ignore' }); // undo it
    expect(tcp(H, '10.88.0.1', 18080)).toMatch(/^A /);
    expect(neigh('10.88.0.2')).toEqual([`pn7 ${pa.mac}`]);
  });

  it('anti-spoofing: B with A’s MAC is cut off, and A keeps its traffic', async () => {
    const udpH = await server(H, 'udp', 9002, 'H-udp2');
    expect(tcp(B, '10.88.0.1', 7001)).toBe('H 10.88.0.3');
    sh(B, ['ip', 'link', 'set', 'dev', 'eth0', 'address', pa.mac]);
    udp(B, '10.88.0.1', 9002, 'mac-spoof');
    expect(tcp(B, '10.88.0.1', 7001)).toBeUndefined();
    // A is still reached, from the host and from outside, at its own port.
    expect(tcp(H, '10.88.0.1', 18080)).toMatch(/^A /);
    expect(tcp(O, '10.99.0.1', 18080)).toBe('A 10.99.0.2');
    expect(neigh('10.88.0.2')).toEqual([`pn7 ${pa.mac}`]);
    // B's own MAC back: B is connected again.
    sh(B, ['ip', 'link', 'set', 'dev', 'eth0', 'address', pb.mac]);
    await marked(udpH.lines, B, 9002, 'marker-5');
    expect(udpH.lines.filter((l) => l.endsWith(' mac-spoof'))).toEqual([]);
    expect(tcp(B, '10.88.0.1', 7001)).toBe('H 10.88.0.3');
  });

  it('a port without a plan gets nothing through; its plan back, it answers again', async () => {
    const udpH = await server(H, 'udp', 9004, 'H-udp4');
    loadRuleset(host, cfg, [pa]); // B's context gone from the list, its port still there
    expect(sh(H, ['nft', 'list', 'chain', 'netdev', 'paene', 'closed_pn8'])).toMatch(/policy drop/);
    udp(B, '10.88.0.1', 9004, 'unplanned');
    expect(tcp(B, '10.88.0.1', 7001)).toBeUndefined();
    expect(tcp(A, '10.88.0.1', 7001)).toBe('H 10.88.0.2');
    loadRuleset(host, cfg, [pa, pb]);
    await marked(udpH.lines, B, 9004, 'marker-8');
    expect(udpH.lines.filter((l) => l.endsWith(' unplanned'))).toEqual([]);
  });

  it('a guest cannot reach the host’s loopback through its port (route_localnet is on there for published ports)', async () => {
    const udpH = await server(H, 'udp', 9003, 'H-udp3');
    // B routes 127.0.0.1 to the gateway instead of its own lo.
    sh(B, ['ip', 'route', 'del', 'table', 'local', 'local', '127.0.0.0/8', 'dev', 'lo']);
    sh(B, ['ip', 'route', 'del', 'table', 'local', 'local', '127.0.0.1', 'dev', 'lo']);
    sh(B, ['ip', 'route', 'add', '127.0.0.1/32', 'via', '10.88.0.1', 'dev', 'eth0']);
    udp(B, '127.0.0.1', 9003, 'via-lo-1');
    await marked(udpH.lines, B, 9003, 'marker-6');
    expect(udpH.lines.filter((l) => l.endsWith(' via-lo-1'))).toEqual([]);
    // Control: without paene's guards the datagram reaches the host's loopback.
    sh(H, ['nft', 'delete', 'table', 'netdev', 'paene']);
    udp(B, '127.0.0.1', 9003, 'via-lo-2');
    await marked(udpH.lines, B, 9003, 'marker-7');
    expect(udpH.lines).toContain('10.88.0.3 via-lo-2');
    loadRuleset(host, cfg, [pa, pb]);
    sh(B, ['ip', 'route', 'del', '127.0.0.1/32']);
    sh(B, ['ip', 'route', 'add', 'table', 'local', 'local', '127.0.0.1', 'dev', 'lo', 'src', '127.0.0.1']);
    sh(B, ['ip', 'route', 'add', 'table', 'local', 'local', '127.0.0.0/8', 'dev', 'lo', 'src', '127.0.0.1']);
  });

  it('tears down to nothing: disconnect, empty ruleset, gateway removed, no leftovers', () => {
    // With a port left, the gateway's link stays.
    disconnectPrivate(host, pa);
    removeBridgeIfUnused(host, cfg);
    expect(leftovers(host, cfg)).toContain('bridge paene0');
    expect(json<{ ifname: string }[]>(A, ['ip', '-j', 'link', 'show']).map((l) => l.ifname)).toEqual(['lo']);
    disconnectPrivate(host, pb);
    disconnectPrivate(host, pb); // absent is fine
    loadRuleset(host, cfg, []);
    removeBridgeIfUnused(host, cfg);
    expect(leftovers(host, cfg)).toEqual([]);
    removeBridgeIfUnused(host, cfg); // idempotent
    expect(sh(H, ['nft', 'list', 'tables']).trim()).toBe('');
  });
});
