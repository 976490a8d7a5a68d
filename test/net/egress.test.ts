// Egress of shared contexts (issue 25) in a world the test makes: a network
// namespace H plays the host (paene runs in it: its CLI, its monitor, the
// contexts' shared stack), a second one U plays the uplink and the internet
// (a router at 172.31.250.2, an HTTP server at 203.0.113.10, a DNS responder
// at 203.0.113.53). Nothing here touches the machine's own interfaces,
// routes or firewall, and no packet leaves the machine. Its state root has
// no network settings at first: egress is what a new root gets by default.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { paeneLeftIn } from '../../src/check/world.js';
import { openRuntime } from '../../src/runtime/open.js';
import { PAENE, describeReal, tempRoot } from '../helpers.js';

const sh = (args: string[], input?: string) => spawnSync(args[0] as string, args.slice(1), { encoding: 'utf8', input });

// A DNS responder: www.paene.test A 203.0.113.10, NXDOMAIN for anything else.
const DNS = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
s.on('message', (q, r) => {
  let i = 12, name = [];
  while (q[i]) { name.push(q.subarray(i + 1, i + 1 + q[i]).toString()); i += q[i] + 1; }
  const qend = i + 5, type = q.readUInt16BE(i + 1);
  const hit = name.join('.').toLowerCase() === 'www.paene.test';
  const h = Buffer.from(q.subarray(0, 12));
  h.writeUInt16BE(0x8180 | (hit ? 0 : 3), 2); h.writeUInt16BE(hit && type === 1 ? 1 : 0, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  const ans = hit && type === 1 ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 10]) : Buffer.alloc(0);
  s.send(Buffer.concat([h, q.subarray(12, qend), ans]), r.port, r.address);
});
s.bind(53, '203.0.113.53');
`;

describeReal('egress of shared contexts, in a test-made world', () => {
  const H = `paene-t-egh-${process.pid}`;
  const U = `paene-t-egu-${process.pid}`;
  const root = tempRoot('egress', { egress: true });
  /** a root that keeps the 127.x pool (net settings --egress-pool none, as tempRoot makes them) */
  const cutOff = tempRoot('egress-none');
  const www = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-www-'));
  const procs: ChildProcess[] = [];
  /** paene as the host H runs it */
  const paene = (args: string[], stateRoot = root) => {
    const r = spawnSync('nsenter', [`--net=/run/netns/${H}`, '--', PAENE, '--root', stateRoot, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };
  const must = (args: string[], stateRoot = root) => {
    const r = paene(args, stateRoot);
    if (r.code !== 0) throw new Error(`paene ${args.join(' ')}: ${r.out}`);
    return r.out;
  };
  const inGuest = (cmd: string) => paene(['exec', 'web', '--', '/bin/sh', '-c', cmd]);
  /** an HTTP GET from inside with busybox nc (its wget works too, test/net/apt.test.ts, but not with -T) */
  const get = (host: string, port = 80) => inGuest(`printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} ${port}`);
  const bg = (ns: string, args: string[]) => {
    const p = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...args], { stdio: 'ignore' });
    procs.push(p);
    return p;
  };

  beforeAll(async () => {
    for (const ns of [H, U]) if (sh(['ip', 'netns', 'add', ns]).status !== 0) throw new Error(`ip netns add ${ns}`);
    const steps = [
      ['ip', 'link', 'add', 'paene-teh0', 'netns', H, 'type', 'veth', 'peer', 'name', 'paene-teu0', 'netns', U],
      ['ip', '-n', H, 'link', 'set', 'lo', 'up'],
      ['ip', '-n', U, 'link', 'set', 'lo', 'up'],
      ['ip', '-n', H, 'addr', 'add', '172.31.250.1/30', 'dev', 'paene-teh0'],
      ['ip', '-n', U, 'addr', 'add', '172.31.250.2/30', 'dev', 'paene-teu0'],
      ['ip', '-n', H, 'link', 'set', 'paene-teh0', 'up'],
      ['ip', '-n', U, 'link', 'set', 'paene-teu0', 'up'],
      ['ip', '-n', U, 'addr', 'add', '203.0.113.10/32', 'dev', 'lo'],
      ['ip', '-n', U, 'addr', 'add', '203.0.113.53/32', 'dev', 'lo'],
      ['ip', '-n', H, 'route', 'add', 'default', 'via', '172.31.250.2'],
    ];
    for (const s of steps) {
      const r = sh(s);
      if (r.status !== 0) throw new Error(`${s.join(' ')}: ${r.stderr}`);
    }
    fs.writeFileSync(path.join(www, 'index.html'), 'from-the-internet\n');
    bg(U, ['busybox', 'httpd', '-f', '-p', '203.0.113.10:80', '-h', www]);
    bg(U, [process.execPath, '-e', DNS]);
    // the host's own services: one on its loopback, one on its address (not published to contexts)
    bg(H, ['busybox', 'httpd', '-f', '-p', '127.0.0.1:18080', '-h', www]);
    bg(H, ['busybox', 'httpd', '-f', '-p', '172.31.250.1:18081', '-h', www]);
    await new Promise((r) => setTimeout(r, 500));
  });

  afterAll(async () => {
    const left: string[] = [];
    try {
      for (const r of [root, cutOff])
        for (const n of fs.existsSync(path.join(r, 'contexts')) ? fs.readdirSync(path.join(r, 'contexts')) : [])
          if (!n.startsWith('.')) paene(['destroy', '--force', n], r);
      left.push(...paeneLeftIn(H));
      await openRuntime(root).shutdownMonitor();
      await openRuntime(cutOff).shutdownMonitor();
    } finally {
      for (const p of procs) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid);
      for (const ns of [H, U]) sh(['ip', 'netns', 'delete', ns]);
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(cutOff, { recursive: true, force: true });
      fs.rmSync(www, { recursive: true, force: true });
    }
    expect(left.filter(Boolean)).toEqual([]);
  });

  it('a default shared context reaches a server beyond the host through NAT, by name; --egress none closes it live; the walls stay', () => {
    expect(sh(['nsenter', `--net=/run/netns/${H}`, '--', 'curl', '-s', '--max-time', '3', 'http://203.0.113.10/']).stdout).toBe(
      'from-the-internet\n',
    ); // the host's own control
    // no egress setting at all: only the world's resolver (this machine's own is not the test world's)
    must(['net', 'settings', '--dns', '203.0.113.53']);
    must(['create', 'web']);
    const settings = JSON.parse(must(['net', 'settings', '--json']));
    expect(settings).toMatchObject({ egressAuto: true, egressPool4: '10.77.0.0/16' }); // picked at the first create
    must(['start', 'web']);
    const addr = JSON.parse(must(['net', 'ls', '--json']))[0].addresses[0] as string;
    expect(addr).toMatch(/^10\.77\.0\.\d+$/);

    // out to the internet, by address and by name, with the resolv.conf paene wrote (read-only inside)
    expect(get('203.0.113.10').out).toContain('from-the-internet');
    expect(inGuest('cat /etc/resolv.conf').out).toContain('nameserver 203.0.113.53');
    expect(inGuest('echo nameserver 192.0.2.1 > /etc/resolv.conf').code).not.toBe(0);
    const lookup = inGuest('busybox nslookup www.paene.test');
    console.log(`nslookup: ${lookup.code} ${lookup.out.replaceAll('\n', ' | ')}`);
    expect(lookup.out).toContain('203.0.113.10');
    // by name over HTTP through nc
    const byName = get('www.paene.test');
    expect(byName.out).toContain('from-the-internet');

    // the walls: the host's loopback service is its own loopback's (nothing there), the host's address is refused
    expect(sh(['nsenter', `--net=/run/netns/${H}`, '--', 'curl', '-s', '--max-time', '3', 'http://127.0.0.1:18080/']).stdout).toBe(
      'from-the-internet\n',
    );
    const loop = get('127.0.0.1', 18080);
    const own = get('172.31.250.1', 18081);
    console.log(`host loopback: ${loop.code} ${loop.out} | host address: ${own.code} ${own.out}`);
    expect(loop.code).not.toBe(0);
    expect(loop.out).toMatch(/refused/i);
    expect(own.code).not.toBe(0);
    expect(own.out).toMatch(/not permitted|refused/i);

    // --egress none, live: refused at once (a TCP reset, not a timeout), the host's side of it unchanged
    must(['net', 'egress', 'web', 'none']);
    const t0 = Date.now();
    const closed = get('203.0.113.10');
    console.log(`egress none: ${closed.code} ${closed.out} in ${Date.now() - t0} ms`);
    expect(closed.code).not.toBe(0);
    expect(closed.out).toMatch(/refused/i);
    must(['net', 'egress', 'web', 'nat']);
    expect(get('203.0.113.10').out).toContain('from-the-internet');

    // the last one out takes the pool's link and table away
    must(['stop', 'web']);
    expect(sh(['ip', '-n', H, 'link', 'show', 'paene-egress']).status).not.toBe(0);
    expect(sh(['ip', 'netns', 'exec', H, 'nft', 'list', 'tables']).stdout).not.toMatch(/paene_eg/);
    // the pool cannot change under a context that holds an address of it
    const change = paene(['net', 'settings', '--egress-pool', 'none']);
    expect(change.code).not.toBe(0);
    expect(change.out).toMatch(/context 'web' has 10\.77\.0\.\d+ from the egress pool 10\.77\.0\.0\/16: destroy it/);
  }, 120_000);

  it('a private context gets out through the masquerade at its routed port; --egress none closes it live, its published port still answers', () => {
    must(['create', 'priv', '--net', 'private', '--publish', '18090:80']);
    must(['start', 'priv']);
    const inPriv = (cmd: string) => paene(['exec', 'priv', '--', '/bin/sh', '-c', cmd]);
    const out = () => inPriv(`printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 203.0.113.10 80`);
    expect(out().out).toContain('from-the-internet');
    inPriv('mkdir -p /tmp/w && echo from-priv > /tmp/w/index.html && httpd -p 80 -h /tmp/w');
    const published = () =>
      sh(['nsenter', `--net=/run/netns/${H}`, '--', 'curl', '-s', '--max-time', '3', 'http://172.31.250.1:18090/']).stdout;
    expect(published()).toBe('from-priv\n');
    must(['net', 'egress', 'priv', 'none']);
    const closed = out();
    console.log(`private egress none: ${closed.code} ${closed.out}`);
    expect(closed.code).not.toBe(0);
    expect(closed.out).toMatch(/refused/i);
    expect(published()).toBe('from-priv\n'); // answers to connections made to it still leave
    must(['net', 'egress', 'priv', 'nat']);
    expect(out().out).toContain('from-the-internet');
    expect(inPriv('busybox nslookup www.paene.test').out).toContain('203.0.113.10'); // its resolv.conf too
    must(['destroy', '--force', 'priv']);
  }, 120_000);

  it('a context on the 127.x pool (--egress-pool none) gets EPERM beyond the host, never the bare EINVAL', () => {
    must(['create', 'lo'], cutOff);
    must(['start', 'lo'], cutOff);
    const addr = JSON.parse(must(['net', 'ls', '--json'], cutOff))[0].addresses[0] as string;
    expect(addr).toMatch(/^127\./);
    const inLo = (cmd: string) => paene(['exec', 'lo', '--', '/bin/sh', '-c', cmd], cutOff);
    const tcp = inLo(`printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 203.0.113.10 80`);
    const udp = inLo('busybox nslookup www.paene.test 203.0.113.53');
    console.log(`127.x context: tcp ${tcp.code} ${tcp.out} | udp ${udp.code} ${udp.out.replaceAll('\n', ' | ')}`);
    expect(tcp.code).not.toBe(0);
    expect(tcp.out).toMatch(/not permitted/i);
    expect(tcp.out).not.toMatch(/invalid argument/i);
    expect(udp.out).not.toContain('203.0.113.10');
    expect(udp.out).not.toMatch(/invalid argument/i);
    // and nothing of egress was made for it: no resolv.conf of paene's, no pool
    expect(fs.existsSync(path.join(cutOff, 'contexts', 'lo', 'resolv.conf'))).toBe(false);
    expect(JSON.parse(must(['net', 'settings', '--json'], cutOff)).egressPool4).toBeUndefined();
    must(['destroy', '--force', 'lo'], cutOff);
  }, 120_000);

  it('a host whose nft cannot NAT keeps the 127.x pool: one warning line for a create of two, never a failure', async () => {
    // an nft that fails as a kernel without nf_tables' nat would (the tool is found in PATH first)
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-nonft-'));
    fs.writeFileSync(
      path.join(bin, 'nft'),
      '#!/bin/sh\ncat >/dev/null\necho "Error: Could not process rule: Operation not supported" >&2\nexit 1\n',
      {
        mode: 0o755,
      },
    );
    const fresh = tempRoot('egress-nonft', { egress: true });
    try {
      const r = spawnSync('nsenter', [`--net=/run/netns/${H}`, '--', PAENE, '--root', fresh, 'create', 'nn%d', '--count', '2'], {
        encoding: 'utf8',
        timeout: 120_000,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      });
      console.log(`create without NAT: ${r.status} ${JSON.stringify(r.stderr)}`);
      expect(r.status).toBe(0);
      expect(r.stderr.split('\n').filter((l) => l.includes('warning: shared contexts get 127.x addresses'))).toHaveLength(1);
      expect(r.stderr).toMatch(/nft cannot load the egress table here \(Error: Could not process rule: Operation not supported\)/);
      const addrs = JSON.parse(paene(['net', 'ls', '--json'], fresh).out).map((x: { addresses: string[] }) => x.addresses[0]);
      expect(addrs).toHaveLength(2);
      for (const a of addrs) expect(a).toMatch(/^127\./);
      expect(fs.existsSync(path.join(fresh, 'net.json'))).toBe(false); // still auto: a later create with NAT picks a pool
      expect(sh(['ip', '-n', H, 'link', 'show', 'paene-egress']).status).not.toBe(0);
    } finally {
      for (const n of ['nn1', 'nn2']) paene(['destroy', '--force', n], fresh);
      await openRuntime(fresh).shutdownMonitor();
      fs.rmSync(fresh, { recursive: true, force: true });
      fs.rmSync(bin, { recursive: true, force: true });
    }
  }, 180_000);

  it("an auto pool given back with its root's last context and taken by another root is picked anew, never shared", async () => {
    const [a, b] = [tempRoot('egress-a', { egress: true }), tempRoot('egress-b', { egress: true })];
    const poolOf = (r: string) => JSON.parse(must(['net', 'settings', '--json'], r)).egressPool4 as string;
    try {
      must(['create', 'a1'], a);
      const first = poolOf(a);
      must(['destroy', '--force', 'a1'], a); // its last context: its claims go back
      must(['create', 'b1'], b);
      expect(poolOf(b)).toBe(first); // free again, the first candidate that is
      must(['create', 'a2'], a);
      console.log(`auto pools: a ${first}, then b ${poolOf(b)}, then a ${poolOf(a)}`);
      expect(poolOf(a)).not.toBe(first);
      expect(poolOf(a)).not.toBe(poolOf(root));
      expect(JSON.parse(must(['net', 'ls', '--json'], a))[0].addresses[0]).toMatch(
        new RegExp(`^${poolOf(a).split('.').slice(0, 2).join('\\.')}\\.`),
      );
    } finally {
      for (const [r, n] of [
        [a, 'a2'],
        [b, 'b1'],
      ] as const)
        paene(['destroy', '--force', n], r);
      for (const r of [a, b]) {
        await openRuntime(r).shutdownMonitor();
        fs.rmSync(r, { recursive: true, force: true });
      }
    }
  }, 180_000);

  it("DNS: the host's loopback resolvers are left out; with nothing usable, create says so instead of writing a broken file", () => {
    must(['net', 'settings', '--dns', 'host']);
    const stub = path.join(www, 'stub-resolv.conf');
    fs.writeFileSync(stub, 'nameserver 127.0.0.53\noptions edns0\nsearch lan\n');
    // the host's resolv.conf seen by this create only: a mount namespace of its own with the stub over it
    const r = spawnSync(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        `mount --bind ${stub} /etc/resolv.conf && exec nsenter --net=/run/netns/${H} -- ${PAENE} --root ${root} create quiet`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    console.log(`create with a loopback-only host resolver: ${r.status} ${r.stderr.trim()}`);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/warning: no resolver for the context's \/etc\/resolv.conf .*127\.0\.0\.53\) are on its loopback/);
    // with the host's own (this machine's, not loopback): its nameservers, a file of paene's
    must(['start', 'quiet']);
    const conf = fs.readFileSync(path.join(root, 'contexts', 'quiet', 'resolv.conf'), 'utf8');
    expect(conf).toMatch(/^nameserver /m);
    expect(conf).not.toMatch(/nameserver 127\./);
    expect(paene(['exec', 'quiet', '--', 'cat', '/etc/resolv.conf']).out).toBe(conf.trim());
    must(['destroy', '--force', 'quiet']);
  }, 120_000);
});
