// The shared-network wall on the real kernel: the programs of
// src/net/sockaddr.ts pass the verifier, and once attached to a cgroup they
// do to a process inside what the policy says. Only loopback addresses
// (127.0.0.0/8, ::1) are used; no interface is touched. The "host" here is
// this test process, outside the cgroup, with listeners on 127.0.0.1 and on
// the context's and a neighbour's addresses.

import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Asm } from '../../src/bpf/ebpf.js';
import { isPaeneError } from '../../src/model/errors.js';
import { buildSockAddr, SOCK_ADDR_HOOKS, type SockAddrHook, type SockAddrPolicy } from '../../src/net/sockaddr.js';
import { applySockAddr, attachedSockAddr, attachSockAddr, detachSockAddr, verifySockAddr } from '../../src/kernel/bpf.js';
import { detectCgroupHost } from '../../src/cgroups/cgroups.js';
import { describeReal } from '../helpers.js';

const OWN = '127.77.1.2';
const NEIGHBOUR = '127.77.1.3';
const OWN_AFTER = '127.77.1.4';
const HOST_ONLY = '127.88.0.1'; // stands in for a host address not published to contexts

/** 64 host addresses (stand-ins on 127.88.1.x, as HOST_ONLY) and 64 IPv6 ones: more than 16, an address set each. */
const HOSTS4 = Array.from({ length: 64 }, (_, i) => `127.88.1.${i + 1}`);
const HOSTS6 = Array.from({ length: 64 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);

const policy = (own: string): SockAddrPolicy => ({
  v4: [own],
  v6: [],
  peerNets4: ['127.77.0.0/16'],
  hostDeny4: [HOST_ONLY],
  hostDeny6: [],
});

/** What the child does, one step after the other; it prints the results as JSON. */
const CHILD = String.raw`
import fs from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
// The kernel's own record of a listener's address (/proc/net/tcp*, which no BPF program rewrites).
const kernelBound = (port) => {
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(f, 'utf8').split('\n').slice(1)) {
      const [, local, , st] = line.trim().split(/\s+/);
      if (!local || st !== '0A') continue;
      const [hex, p] = local.split(':');
      if (parseInt(p, 16) !== port) continue;
      const v4 = (h) => [3, 2, 1, 0].map((i) => parseInt(h.slice(i * 2, i * 2 + 2), 16)).join('.');
      if (hex.length === 8) return v4(hex);
      return hex.slice(0, 24) === '0000000000000000FFFF0000' ? '::ffff:' + v4(hex.slice(24)) : hex;
    }
  }
  return 'not listed';
};
const listen = (s) => new Promise((resolve) => {
  const srv = net.createServer();
  srv.on('error', (e) => resolve({ err: e.code }));
  srv.listen({ host: s.host, port: 0 }, () => {
    const a = srv.address();
    const bound = kernelBound(a.port);
    srv.close(() => resolve({ address: a.address, bound }));
  });
});
const connect = (s) => new Promise((resolve) => {
  const c = net.connect({ host: s.host, port: s.port });
  let data = '', local, remote;
  c.on('connect', () => { local = c.localAddress; remote = c.remoteAddress; });
  c.on('data', (d) => (data += d));
  c.on('error', (e) => resolve({ err: e.code }));
  c.on('close', () => resolve({ data, local, remote }));
});
const udp = (s) => new Promise((resolve) => {
  const u = dgram.createSocket('udp4');
  const done = (r) => { u.close(); resolve(r); };
  u.on('error', (e) => done({ err: e.code }));
  u.on('message', (m, r) => done({ data: String(m), from: r.address + ':' + r.port, local: u.address().address }));
  u.send('ping', s.port, s.host, (e) => { if (e) done({ err: e.code }); });
});
// A UDP echo server on s.host:s.port for s.ms; after each answer it also sends to the client's address on
// s.stray (a port that client never used): that must not reach the host.
const udpEcho = (s) => new Promise((resolve) => {
  const u = dgram.createSocket('udp4');
  let echoed = 0;
  u.on('message', (m, r) => {
    echoed++;
    u.send(m, r.port, r.address);
    u.send('stray', s.stray, r.address);
  });
  u.bind(s.port, s.host, () => setTimeout(() => { const a = u.address().address; u.close(); resolve({ echoed, local: a }); }, s.ms));
});
const ops = { listen, connect, udp, udpEcho };
// A liveness guard only: if a packet went astray the step ends instead of hanging.
const guard = (p) => Promise.race([p, new Promise((r) => setTimeout(() => r({ err: 'no answer' }), 15000).unref())]);
const out = [];
for (const s of JSON.parse(process.argv[2])) out.push(await guard(ops[s.op](s)));
process.stdout.write(JSON.stringify(out));
process.exit(0);
`;

type Step =
  | { op: 'listen'; host: string }
  | { op: 'connect'; host: string; port: number }
  | { op: 'udp'; host: string; port: number }
  | { op: 'udpEcho'; host: string; port: number; ms: number; stray: number };
interface Result {
  err?: string;
  bound?: string;
  echoed?: number;
  address?: string;
  data?: string;
  local?: string;
  remote?: string;
  from?: string;
}

describeReal('shared-network sock_addr programs on the real kernel', () => {
  let cg = '';
  let tmp = '';
  const servers: (net.Server | dgram.Socket)[] = [];
  const hits = { host: 0 };
  let tcpPort = 0; // listeners on 127.0.0.1, OWN and OWN_AFTER
  let nbPort = 0;
  let denyPort = 0;
  let udpPort = 0; // UDP echo on 127.0.0.1 and OWN

  const tcpServer = (host: string, port: number, tag: string) =>
    new Promise<number>((resolve, reject) => {
      const s = net.createServer((sock) => {
        if (tag === 'host') hits.host++;
        sock.end(`${tag} ${sock.remoteAddress}`);
      });
      s.on('error', reject);
      s.listen({ host, port, exclusive: true }, () => {
        servers.push(s);
        resolve((s.address() as net.AddressInfo).port);
      });
    });
  const udpServer = (host: string, port: number, tag: string) =>
    new Promise<number>((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.on('message', (_m, r) => s.send(tag, r.port, r.address));
      s.on('error', reject);
      s.bind({ address: host, port, exclusive: true }, () => {
        servers.push(s);
        resolve(s.address().port);
      });
    });
  /** The same free port on several loopback addresses (the first picks it; retried if another is taken). */
  async function samePort(make: (host: string, port: number, tag: string) => Promise<number>, hosts: [string, string][]): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const before = servers.length;
      const port = await make(hosts[0][0], 0, hosts[0][1]);
      try {
        for (const [h, tag] of hosts.slice(1)) await make(h, port, tag);
        return port;
      } catch (e) {
        for (const s of servers.splice(before)) s.close();
        if (attempt === 5) throw e;
      }
    }
  }

  /** Runs the steps in a child that first moves itself into `dir`; returns one result per step. */
  function inCgroup(dir: string, steps: Step[]): Promise<Result[]> {
    return new Promise((resolve, reject) => {
      const script = path.join(tmp, 'child.mjs');
      const c = spawn(
        '/bin/sh',
        ['-c', 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"', 'sh', dir, process.execPath, script, JSON.stringify(steps)],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      c.on('error', reject);
      c.on('close', (code) => {
        if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
        else resolve(JSON.parse(out) as Result[]);
      });
    });
  }

  const counts = (n: number) => Object.fromEntries(SOCK_ADDR_HOOKS.map((h) => [h, n]));

  /** Kills what is left in a test cgroup (by pid) and removes it, deepest first. */
  async function removeCgroup(dir: string): Promise<void> {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await removeCgroup(path.join(dir, e.name));
    try {
      detachSockAddr(dir);
    } catch {
      /* best effort: removing the cgroup releases its programs anyway */
    }
    for (let i = 0; i < 100; i++) {
      const pids = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    fs.rmdirSync(dir);
  }

  beforeAll(async () => {
    const unified = detectCgroupHost().unified;
    if (!unified) throw new Error('this host has no cgroup v2 hierarchy: cgroup BPF programs need one');
    cg = path.join(unified.mount, `paene-test-bpf-${process.pid}`);
    fs.mkdirSync(cg);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-bpf-'));
    fs.writeFileSync(path.join(tmp, 'child.mjs'), CHILD);
    tcpPort = await samePort(tcpServer, [
      ['127.0.0.1', 'host'],
      [OWN, 'own'],
      [OWN_AFTER, 'own-after'],
    ]);
    nbPort = await tcpServer(NEIGHBOUR, 0, 'neighbour');
    denyPort = await tcpServer(HOST_ONLY, 0, 'host-only');
    udpPort = await samePort(udpServer, [
      ['127.0.0.1', 'host'],
      [OWN, 'own'],
    ]);
  });

  afterAll(async () => {
    for (const s of servers) s.close();
    if (cg) await removeCgroup(cg);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('every program passes the kernel verifier (v4 only, dual stack, v6 only, 16 entries a list, 64 host addresses)', () => {
    const n = (f: (i: number) => string) => Array.from({ length: 16 }, (_, i) => f(i));
    const policies: SockAddrPolicy[] = [
      policy(OWN),
      {
        v4: [OWN, '10.9.8.7'],
        v6: ['fd00::2', 'fd00::3'],
        peerNets4: ['127.77.0.0/16'],
        hostDeny4: [HOST_ONLY],
        hostDeny6: ['2001:db8::1'],
      },
      { v4: [], v6: ['fd00::2'], peerNets4: [], hostDeny4: [], hostDeny6: [] },
      {
        v4: n((i) => `127.77.2.${i + 1}`),
        v6: n((i) => `fd00::${i + 1}`),
        peerNets4: n((i) => `127.${100 + i}.0.0/16`),
        hostDeny4: n((i) => `192.0.2.${i + 1}`),
        hostDeny6: n((i) => `2001:db8::${i + 1}`),
      },
      { ...policy(OWN), v6: ['fd00::2'], hostDeny4: HOSTS4, hostDeny6: HOSTS6, denyNets6: ['fe80::/10'] },
      { v4: [], v6: ['fd00::2'], peerNets4: [], hostDeny4: HOSTS4, hostDeny6: [], denyNets6: ['fe80::/10'] },
    ];
    for (const p of policies) verifySockAddr(buildSockAddr(p));
  });

  it('a program the verifier rejects is reported with its log', () => {
    let err: unknown;
    try {
      verifySockAddr({ progs: { connect4: new Asm().ret(7).toBuffer() } }); // connect may only return 0 or 1
    } catch (e) {
      err = e;
    }
    expect(isPaeneError(err, 'internal')).toBe(true);
    expect((err as Error).message).toMatch(/connect4.*refused[\s\S]*verifier log/);
  });

  it("the host's listener on 127.0.0.1 answers a process outside the context", async () => {
    const data = await new Promise<string>((resolve, reject) => {
      let d = '';
      net
        .connect({ host: '127.0.0.1', port: tcpPort })
        .on('data', (x) => (d += x))
        .on('close', () => resolve(d))
        .on('error', reject);
    });
    expect(data).toBe('host 127.0.0.1');
    hits.host = 0;
  });

  it('attached, it confines binds, redirects loopback, forces the source and refuses host addresses', async () => {
    attachSockAddr(cg, buildSockAddr(policy(OWN)));
    expect(attachedSockAddr(cg)).toEqual(counts(1));

    const r = await inCgroup(cg, [
      { op: 'listen', host: '0.0.0.0' },
      { op: 'listen', host: '127.0.0.1' },
      { op: 'listen', host: NEIGHBOUR },
      { op: 'listen', host: '::' },
      { op: 'connect', host: '127.0.0.1', port: tcpPort },
      { op: 'connect', host: NEIGHBOUR, port: nbPort },
      { op: 'connect', host: HOST_ONLY, port: denyPort },
      { op: 'udp', host: '127.0.0.1', port: udpPort },
      { op: 'connect', host: '::ffff:127.0.0.1', port: tcpPort },
      { op: 'connect', host: '::1', port: tcpPort },
      // beyond the host from a 127.x address (TEST-NET-1: no packet could leave from a loopback source anyway)
      { op: 'connect', host: '192.0.2.1', port: 9 },
      { op: 'udp', host: '192.0.2.1', port: 9 },
    ]);
    // bind 0.0.0.0 → its own address in the kernel; getsockname shows what the program asked for
    expect(r[0]).toEqual({ address: '0.0.0.0', bound: OWN });
    expect(r[1]).toEqual({ address: '127.0.0.1', bound: OWN }); // its 127.0.0.1 is its own first address
    expect(r[2]).toEqual({ err: 'EPERM' }); // a neighbour's address
    expect(r[3]).toEqual({ address: '::', bound: `::ffff:${OWN}` }); // bind :: without a v6 address → the mapped v4 one
    // connect to the host's 127.0.0.1 reaches the listener on its own address instead (which sees the
    // context's address as the source); the program sees the loopback at both ends, as without the wall
    expect(r[4]).toEqual({ data: `own ${OWN}`, local: '127.0.0.1', remote: '127.0.0.1' });
    // a neighbour is reachable and sees the context's address as the source (forced by bpf_bind)
    expect(r[5]).toEqual({ data: `neighbour ${OWN}`, local: OWN, remote: NEIGHBOUR });
    expect(r[6]).toEqual({ err: 'EPERM' }); // hostDeny4
    // UDP to the host's 127.0.0.1 goes to the server on its own address; the reply shows 127.0.0.1
    expect(r[7]).toEqual({ data: 'own', from: `127.0.0.1:${udpPort}`, local: '0.0.0.0' }); // Node binds 0.0.0.0 first
    // the dual-stack way around: ::ffff:127.0.0.1 is redirected like 127.0.0.1
    expect(r[8]).toEqual({ data: `own ${OWN}`, local: '::ffff:127.0.0.1', remote: '::ffff:127.0.0.1' });
    expect(r[9]).toEqual({ err: 'EPERM' }); // ::1 without a v6 address of its own
    // a loopback source never leaves the host: refused by the wall (EPERM), not the kernel's bare EINVAL
    expect(r[10]).toEqual({ err: 'EPERM' });
    expect(r[11]).toEqual({ err: 'EPERM' });
    expect(hits.host).toBe(0); // nothing from inside ever reached the host's listener
  });

  it("a host client on 127.0.0.1 gets a context's UDP answers, connected or not; no other host port opens", async () => {
    const stray: string[] = [];
    const strayPort = await new Promise<number>((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.on('message', (m, r) => stray.push(`${r.address} ${m}`));
      s.on('error', reject);
      s.bind({ address: '127.0.0.1', port: 0, exclusive: true }, () => {
        servers.push(s);
        resolve(s.address().port);
      });
    });
    const echoPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, OWN, () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p)); // a port free on OWN just now (UDP and TCP ports are separate; good enough)
      });
    });
    const server = inCgroup(cg, [{ op: 'udpEcho', host: '0.0.0.0', port: echoPort, ms: 4000, stray: strayPort }]);
    /** Sends until an answer arrives (the server may still be starting); the answer's source, or undefined. */
    const ask = async (connected: boolean): Promise<string | undefined> => {
      const c = dgram.createSocket('udp4');
      await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
      if (connected) await new Promise<void>((r) => c.connect(echoPort, OWN, () => r()));
      try {
        for (let i = 0; i < 30; i++) {
          const got = new Promise<string | undefined>((resolve) => {
            const t = setTimeout(() => resolve(undefined), 100);
            c.once('message', (_m, r) => {
              clearTimeout(t);
              resolve(`${r.address}:${r.port}`);
            });
          });
          if (connected) c.send('q');
          else c.send('q', echoPort, OWN);
          const from = await got;
          if (from) return from;
        }
        return undefined;
      } finally {
        c.close();
      }
    };
    expect(await ask(false)).toBe(`${OWN}:${echoPort}`);
    expect(await ask(true)).toBe(`${OWN}:${echoPort}`);
    const [r] = await server;
    expect(r?.echoed).toBeGreaterThanOrEqual(2);
    expect(r?.local).toBe('0.0.0.0');
    // The server's strays to 127.0.0.1:strayPort went to its own loopback, not to the host's listener.
    expect(stray).toEqual([]);
  });

  it('re-attaching replaces the programs in place (flags 0): new binds go to the new address', async () => {
    attachSockAddr(cg, buildSockAddr(policy(OWN_AFTER)));
    expect(attachedSockAddr(cg)).toEqual(counts(1)); // replaced, not added
    const r = await inCgroup(cg, [
      { op: 'listen', host: '0.0.0.0' },
      { op: 'listen', host: OWN }, // now a neighbour's
      { op: 'connect', host: '127.0.0.1', port: tcpPort },
    ]);
    expect(r).toEqual([
      { address: '0.0.0.0', bound: OWN_AFTER },
      { err: 'EPERM' },
      { data: `own-after ${OWN_AFTER}`, local: '127.0.0.1', remote: '127.0.0.1' },
    ]);
    expect(hits.host).toBe(0);
  });

  it('a rejected program leaves the attached ones in place', async () => {
    const w = buildSockAddr(policy(OWN));
    const progs: Partial<Record<SockAddrHook, Buffer>> = { ...w.progs, connect4: new Asm().ret(7).toBuffer() };
    expect(() => attachSockAddr(cg, { progs, storage: w.storage })).toThrow(/verifier log/);
    expect(attachedSockAddr(cg)).toEqual(counts(1));
    expect(await inCgroup(cg, [{ op: 'listen', host: '0.0.0.0' }])).toEqual([{ address: '0.0.0.0', bound: OWN_AFTER }]);
  });

  it('a live change that keeps the programs only rewrites the storage value; another shape attaches anew', async () => {
    expect(applySockAddr(cg, buildSockAddr(policy(OWN)))).toBe('stored'); // OWN_AFTER's programs are attached: the same bytes
    expect(attachedSockAddr(cg)).toEqual(counts(1));
    expect(await inCgroup(cg, [{ op: 'listen', host: '0.0.0.0' }])).toEqual([{ address: '0.0.0.0', bound: OWN }]);
    expect(applySockAddr(cg, buildSockAddr({ ...policy(OWN_AFTER), v4: [OWN_AFTER, '127.77.1.9'] }))).toBe('attached'); // two addresses: other programs
    expect(attachedSockAddr(cg)).toEqual(counts(1));
    expect(
      await inCgroup(cg, [
        { op: 'listen', host: '0.0.0.0' },
        { op: 'listen', host: '127.77.1.9' },
      ]),
    ).toEqual([
      { address: '0.0.0.0', bound: OWN_AFTER },
      { address: '127.77.1.9', bound: '127.77.1.9' },
    ]);
  });

  it('64 host addresses a family: the 20th and the 60th refused by a lookup in the address set, the rest as before; a live change with another set attaches anew', async () => {
    const port = { 20: 0, 60: 0 };
    for (const i of [20, 60] as const) port[i] = await tcpServer(HOSTS4[i - 1] as string, 0, 'host');
    const many: SockAddrPolicy = { ...policy(OWN), hostDeny4: HOSTS4, hostDeny6: HOSTS6, denyNets6: ['fe80::/10'] };
    const w = buildSockAddr(many);
    expect([w.addrSet4?.length, w.addrSet6?.length]).toEqual([64 * 4, 64 * 16]);
    attachSockAddr(cg, w);
    const steps: Step[] = [
      { op: 'connect', host: HOSTS4[19] as string, port: port[20] },
      { op: 'connect', host: HOSTS4[59] as string, port: port[60] },
      { op: 'connect', host: `::ffff:${HOSTS4[59]}`, port: port[60] },
      { op: 'udp', host: HOSTS4[59] as string, port: port[60] },
      { op: 'connect', host: HOSTS6[59] as string, port: 9 }, // refused before any packet could leave
      { op: 'connect', host: 'fe80::1', port: 9 }, // the link-local net, whole
      { op: 'connect', host: NEIGHBOUR, port: nbPort },
      { op: 'connect', host: '127.0.0.1', port: tcpPort },
    ];
    const r = await inCgroup(cg, steps);
    expect(r.slice(0, 6)).toEqual(Array.from({ length: 6 }, () => ({ err: 'EPERM' })));
    expect(r[6]).toEqual({ data: `neighbour ${OWN}`, local: OWN, remote: NEIGHBOUR });
    expect(r[7]).toEqual({ data: `own ${OWN}`, local: '127.0.0.1', remote: '127.0.0.1' });
    // the same set in another order: the same programs, only the value stored; a set without the 60th: new programs
    expect(applySockAddr(cg, buildSockAddr({ ...many, hostDeny4: [...HOSTS4].reverse() }))).toBe('stored');
    expect(applySockAddr(cg, buildSockAddr({ ...many, hostDeny4: HOSTS4.filter((_, i) => i !== 59) }))).toBe('attached');
    const after = await inCgroup(cg, steps.slice(0, 2));
    expect(after[0]).toEqual({ err: 'EPERM' });
    expect(after[1]).not.toEqual({ err: 'EPERM' }); // a host loopback address now: redirected to its own (the model's rule)
    expect(hits.host).toBe(0);
  });

  it('programs whose storage value is not written (zeros) fail closed: bind and connect refused', async () => {
    const w = buildSockAddr(policy(OWN));
    attachSockAddr(cg, { progs: w.progs, storage: Buffer.alloc(w.storage.length) });
    const r = await inCgroup(cg, [
      { op: 'listen', host: '0.0.0.0' },
      { op: 'connect', host: '127.0.0.1', port: tcpPort },
      { op: 'connect', host: NEIGHBOUR, port: nbPort },
    ]);
    expect(r).toEqual([{ err: 'EPERM' }, { err: 'EPERM' }, { err: 'EPERM' }]);
    attachSockAddr(cg, w); // the same programs with the value written: open again
    expect(await inCgroup(cg, [{ op: 'listen', host: '0.0.0.0' }])).toEqual([{ address: '0.0.0.0', bound: OWN }]);
    expect(hits.host).toBe(0);
  });

  it('detach removes every program; the cgroup is then the plain host stack', async () => {
    detachSockAddr(cg);
    expect(attachedSockAddr(cg)).toEqual(counts(0));
    detachSockAddr(cg); // nothing attached is not an error
    const r = await inCgroup(cg, [
      { op: 'listen', host: '0.0.0.0' },
      { op: 'connect', host: '127.0.0.1', port: tcpPort },
    ]);
    expect(r).toEqual([
      { address: '0.0.0.0', bound: '0.0.0.0' },
      { data: 'host 127.0.0.1', local: '127.0.0.1', remote: '127.0.0.1' },
    ]);
    hits.host = 0;
  });

  it('an attach that fails half-way puts back the programs it had replaced', async () => {
    // An ancestor holding a non-overridable program of one type makes the attach of that type fail (EPERM).
    const outer = path.join(cg, 'nest');
    const inner = path.join(outer, 'inner');
    fs.mkdirSync(inner, { recursive: true });
    try {
      const own = buildSockAddr(policy(OWN));
      attachSockAddr(inner, own);
      attachSockAddr(outer, { progs: { connect4: own.progs.connect4 }, storage: own.storage });
      let err: unknown;
      try {
        attachSockAddr(inner, buildSockAddr(policy(OWN_AFTER))); // getsockname ... bind6 go first, connect4 fails
      } catch (e) {
        err = e;
      }
      expect(isPaeneError(err, 'internal')).toBe(true);
      expect((err as Error).message).toMatch(/connect4.*Operation not permitted/);
      expect(attachedSockAddr(inner)).toEqual(counts(1));
      expect(await inCgroup(inner, [{ op: 'listen', host: '0.0.0.0' }])).toEqual([{ address: '0.0.0.0', bound: OWN }]); // the old bind4 is back
    } finally {
      await removeCgroup(outer);
    }
  });

  it('reports a directory outside cgroup v2 as unsupported', () => {
    let err: unknown;
    try {
      attachedSockAddr(os.tmpdir());
    } catch (e) {
      err = e;
    }
    expect(isPaeneError(err, 'unsupported')).toBe(true);
    expect((err as Error).message).toMatch(/not a cgroup v2 directory/);
  });
});
