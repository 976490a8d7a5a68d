// A shared context on a host with many addresses of its own (issue 25): a
// vserver-style host with an alias per guest (64 IPv4 addresses, here on lo),
// 64 IPv6 ones, and 20 interfaces that each have only an IPv6 link-local
// address (a Docker host's veths). The wall refuses every one
// of them, with no count limit (src/net/sockaddr.ts: an address set per
// family, fe80::/10 as one net). The "host" is a network namespace this file
// makes, where paene runs (it reads the host's addresses from the namespace
// it runs in); the machine's own interfaces are never touched, and nothing
// leaves: the namespace has no route out.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { paeneLeftIn } from '../../src/check/world.js';
import { openRuntime } from '../../src/runtime/open.js';
import { PAENE, describeReal, tempRoot } from '../helpers.js';

const sh = (args: string[]) => spawnSync(args[0] as string, args.slice(1), { encoding: 'utf8' });

const HOST4 = Array.from({ length: 64 }, (_, i) => `198.51.100.${i + 1}`);
const HOST6 = Array.from({ length: 64 }, (_, i) => `2001:db8:64::${(i + 1).toString(16)}`);
const PORT = 18090;

/** A TCP server on the given addresses that answers 'host' (the host's services a context must not reach). */
const SERVER = `
const net = require('node:net');
for (const host of JSON.parse(process.argv[1])) net.createServer((c) => c.end('host\\n')).listen(${PORT}, host);
`;

describeReal('a shared context beside a host with many addresses', () => {
  const H = `paene-t-hd-${process.pid}`;
  // egress on: the context's address is routable (10.77.x), so only the wall stands between it and the host's
  // addresses (a 127.x context is refused everything beyond the host anyway)
  const root = tempRoot('hostaddrs', { egress: true });
  const procs: ChildProcess[] = [];
  const paene = (args: string[]) => {
    const r = spawnSync('nsenter', [`--net=/run/netns/${H}`, '--', PAENE, '--root', root, ...args], { encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };
  const must = (args: string[]) => {
    const r = paene(args);
    if (r.code !== 0) throw new Error(`paene ${args.join(' ')}: ${r.out}`);
    return r.out;
  };
  /** busybox nc from inside: what it printed (the server's answer, or its error) */
  const connect = (host: string) => paene(['exec', 'web', '--', '/bin/sh', '-c', `nc -w 3 ${host} ${PORT} </dev/null 2>&1`]).out;
  const fromHost = (host: string) =>
    sh(['nsenter', `--net=/run/netns/${H}`, '--', 'busybox', 'nc', '-w', '3', host, String(PORT)]).stdout.trim();

  beforeAll(async () => {
    if (sh(['ip', 'netns', 'add', H]).status !== 0) throw new Error(`ip netns add ${H}`);
    const steps = [
      ['ip', '-n', H, 'link', 'set', 'lo', 'up'],
      ...HOST4.map((a) => ['ip', '-n', H, 'addr', 'add', `${a}/32`, 'dev', 'lo']),
      ...HOST6.map((a) => ['ip', '-n', H, 'addr', 'add', `${a}/128`, 'dev', 'lo']),
      // ten veth pairs, both ends here and up: twenty interfaces with a link-local address each
      ...Array.from({ length: 10 }, (_, i) => [
        ['ip', '-n', H, 'link', 'add', `paene-thda${i}`, 'type', 'veth', 'peer', 'name', `paene-thdb${i}`],
        ['ip', '-n', H, 'link', 'set', `paene-thda${i}`, 'up'],
        ['ip', '-n', H, 'link', 'set', `paene-thdb${i}`, 'up'],
      ]).flat(),
    ];
    for (const s of steps) {
      const r = sh(s);
      if (r.status !== 0) throw new Error(`${s.join(' ')}: ${r.stderr}`);
    }
    const p = spawn('nsenter', [`--net=/run/netns/${H}`, '--', process.execPath, '-e', SERVER, JSON.stringify([...HOST4, ...HOST6])], {
      stdio: 'ignore',
    });
    procs.push(p);
    for (let i = 0; i < 100 && fromHost(HOST4[59] as string) !== 'host'; i++) await new Promise((r) => setTimeout(r, 100));
  }, 60_000);

  afterAll(async () => {
    const left: string[] = [];
    try {
      if (fs.existsSync(`${root}/contexts/web`)) paene(['destroy', '--force', 'web']);
      left.push(...paeneLeftIn(H));
      await openRuntime(root).shutdownMonitor();
    } finally {
      for (const p of procs) if (p.pid !== undefined && p.exitCode === null) process.kill(p.pid);
      sh(['ip', 'netns', 'delete', H]);
      fs.rmSync(root, { recursive: true, force: true });
    }
    expect(left.filter(Boolean)).toEqual([]);
  }, 120_000);

  it('starts, and refuses the 20th and the 60th host address of each family; the host itself reaches them', () => {
    // the host as paene sees it: 64 + 64 addresses and 20 link-local ones (more than the 16 a list held before)
    const addrs = sh(['ip', '-n', H, '-o', 'addr', 'show']).stdout;
    expect(addrs.match(/ inet6 fe80:/g)?.length).toBe(20);
    for (const a of [HOST4[19], HOST4[59], HOST6[19], HOST6[59]]) expect(fromHost(a as string), a).toBe('host');

    must(['create', 'web']);
    must(['start', 'web']);
    const addr = JSON.parse(must(['net', 'ls', '--json']))[0].addresses[0] as string;
    expect(addr).toMatch(/^10\.77\.0\.\d+$/); // routable: nothing but the wall keeps it from the host's addresses

    for (const a of [HOST4[19], HOST4[59], HOST4[63], HOST6[19], HOST6[59]]) {
      expect(connect(a as string), a).toMatch(/Operation not permitted/);
    }
    // an address that is not the host's is not the wall's business: no route here (nothing leaves the namespace)
    expect(connect('198.51.100.200')).not.toMatch(/Operation not permitted/);
    // its own loopback stays its own
    expect(paene(['exec', 'web', '--', '/bin/sh', '-c', 'nc -l -p 7070 -e echo own & sleep 0.5; nc -w 3 127.0.0.1 7070']).out).toBe('own');
  }, 240_000);
});
