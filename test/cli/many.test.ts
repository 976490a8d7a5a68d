// Many contexts per call, the native `paene exec`, and 100 concurrent CLI
// calls with API requests among them on overlapping names: no context, xid
// claim, cgroup or lock is lost or duplicated.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { ApiServer } from '../../src/api/server.js';
import { openRuntime } from '../../src/runtime/open.js';
import { describeReal, runCli, runCliAsync } from '../helpers.js';
import { useRuntime } from '../fixture.js';

/** The keys of a claims directory (none if no claim was ever made), without its hints file. */
function claimKeys(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.startsWith('.')) : [];
}
import { request } from '../api/request.js';

describeReal('many contexts per call', () => {
  const run = (...args: string[]) => runCli(fx.root, args);
  const runAsync = (args: string[]) => runCliAsync(fx.root, args);

  const fx = useRuntime('many');

  it('create --count makes a numbered set; start/status/stop/destroy take names, patterns and --all', () => {
    const c = run('create', 'm%02d', '--count', '3', '--net', 'none', '--json');
    expect(c.code).toBe(0);
    const made = JSON.parse(c.stdout) as { name: string; ok: boolean; result: { xid: number } }[];
    expect(made.map((m) => [m.name, m.ok])).toEqual([
      ['m01', true],
      ['m02', true],
      ['m03', true],
    ]);
    expect(new Set(made.map((m) => m.result.xid)).size).toBe(3);

    const s = run('start', 'm*', '--json');
    expect(s.code).toBe(0);
    expect((JSON.parse(s.stdout) as { ok: boolean; result: { state: string } }[]).map((r) => r.result.state)).toEqual([
      'running',
      'running',
      'running',
    ]);

    // one bad name among good ones: each reported, the exit code says so, the good ones still done
    const again = run('stop', 'm01', 'nope', '-t', '2');
    expect(again.code).toBe(3);
    expect(again.stdout).toMatch(/stopped context 'm01'/);
    expect(again.stderr).toMatch(/nope: no context named 'nope'/);
    expect(again.stderr).toMatch(/1 of 2 failed/);

    const st = run('status', '--all');
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/m01 .* stopped/);
    expect(st.stdout).toMatch(/m02 .* running/);

    expect(run('start', 'x*').stderr).toMatch(/no context matches 'x\*'/);
    const d = run('destroy', '--all', '--json');
    expect(d.code).toBe(0);
    expect((JSON.parse(d.stdout) as { ok: boolean }[]).every((r) => r.ok)).toBe(true);
    expect(fx.rt.store.names()).toEqual([]);
    expect(fs.readdirSync(path.join(fx.root, 'xids')).filter((f) => !f.startsWith('.'))).toEqual([]);
    expect(claimKeys(path.join(fx.root, 'addrs'))).toEqual([]);
  }, 180_000);

  it('create --start creates and starts a set in one call; a name that exists is reported and the others still run', () => {
    expect(run('create', 'cs2', '--net', 'none').code).toBe(0);
    const r = run('create', 'cs%d', '--count', '3', '--start', '--net', 'none', '--json');
    expect(r.code).toBe(4); // 'exists' for cs2
    const out = JSON.parse(r.stdout) as { name: string; ok: boolean; result?: { state: string; pid: number }; error?: { code: string } }[];
    expect(out.map((o) => [o.name, o.ok])).toEqual([
      ['cs1', true],
      ['cs2', false],
      ['cs3', true],
    ]);
    expect(out[1]?.error?.code).toBe('exists');
    for (const n of ['cs1', 'cs3']) expect(fx.rt.status(n).state).toBe('running');
    expect(fx.rt.status('cs2').state).toBe('stopped'); // the one that existed is left as it was
    expect(run('create', 'cs9', '--start', '--jobs', '0').stderr).toMatch(/--jobs must be/);
    expect(fx.rt.store.names()).not.toContain('cs9'); // a bad flag creates nothing
    expect(run('destroy', 'cs*').code).toBe(0);
  }, 120_000);

  it('exec through the native front door: environment, users, exit codes; a stopped context falls back to the Node CLI', () => {
    expect(run('create', 'fx', '--net', 'none').code).toBe(0);
    expect(run('start', 'fx').code).toBe(0);
    const plan = fx.rt.layout.execPlanFile('fx');
    expect(fs.existsSync(plan)).toBe(true);

    const env = run(
      'exec',
      '-e',
      'FOO=bar',
      '-e',
      'HOME=/tmp',
      'fx',
      '--',
      'sh',
      '-c',
      'echo $FOO $HOME $HOSTNAME $PAENE_CONTEXT; grep CapEff /proc/self/status',
    );
    expect(env.code).toBe(0);
    expect(env.stdout).toMatch(/^bar \/tmp fx fx\n/);
    expect(env.stdout).not.toMatch(/CapEff:\s+0+\n/); // guest root keeps its split-root capabilities
    const user = run('exec', '--user', '1000:1001', 'fx', 'sh', '-c', 'id -u; id -g; grep CapEff /proc/self/status');
    expect(user.stdout).toMatch(/^1000\n1001\nCapEff:\s+0+\n/);
    expect(run('exec', 'fx', '--', 'sh', '-c', 'exit 7').code).toBe(7);
    expect(run('exec', 'fx', '--', '/no/such').code).toBe(127);
    // a live config change rewrites the plan: the next native exec enters with it
    expect(run('hostname', 'fx', 'fx-renamed').code).toBe(0);
    expect(run('exec', 'fx', '--', 'sh', '-c', 'echo $HOSTNAME; hostname').stdout).toBe('fx-renamed\nfx-renamed\n');
    // the same answers as the Node path, which the front door hands what it does not know
    expect(run('exec', '--help').stdout).toMatch(/Run a command inside a running context/);

    expect(run('stop', 'fx', '-t', '2').code).toBe(0);
    expect(fs.existsSync(plan)).toBe(false);
    const stopped = run('exec', 'fx', '--', 'true');
    expect(stopped.code).toBe(5);
    expect(stopped.stderr).toMatch(/context 'fx' is not running/);
    expect(run('destroy', 'fx').code).toBe(0);
  }, 180_000);

  it('100 concurrent CLI calls and 30 API requests on overlapping names lose and duplicate nothing', async () => {
    // the service in this process, on the same root (its own Runtime, as a separate `paene serve` would have)
    const socket = path.join(fx.root, 'run', 'api.sock');
    const server = new ApiServer(openRuntime(fx.root), { socket });
    await server.listen();
    const calls: string[][] = [];
    for (let i = 0; i < 100; i++) {
      const n = `r${i % 10}`;
      switch (i % 6) {
        case 0:
          calls.push(['create', n, '--net', 'none']);
          break;
        case 1:
          calls.push(['start', n]);
          break;
        case 2:
          calls.push(['destroy', '--force', n]);
          break;
        case 3:
          calls.push(['stop', '-t', '1', n]);
          break;
        case 4:
          calls.push(['create', `r${(i + 3) % 10}`, '--net', 'none', '--xid', String(300 + (i % 4))]);
          break;
        default:
          calls.push(['create', 'b%d', '--count', '4', '--net', 'none']);
      }
    }
    const api: Promise<{ status: number; json: unknown }>[] = [];
    const apiCalls = Array.from({ length: 30 }, (_, i) => {
      const n = `r${(i * 7) % 10}`;
      return i % 3 === 0
        ? () => request(socket, 'POST', '/v1/contexts', { name: n, net: 'none' })
        : i % 3 === 1
          ? () => request(socket, 'POST', `/v1/contexts/${n}/start`)
          : () => request(socket, 'DELETE', `/v1/contexts/${n}`, { force: true });
    });
    const cli = Promise.all(calls.map(runAsync));
    for (const c of apiCalls) api.push(c());
    const [results, answers] = await Promise.all([cli, Promise.all(api)]);
    await server.close();
    for (const a of answers) expect([200, 404, 409, 503], JSON.stringify(a.json)).toContain(a.status);
    for (const r of results) {
      // success, or a clean refusal: not found, exists, wrong state, busy; several names: 1 for mixed refusals
      expect([0, 3, 4, 5, 6, ...(r.args[1] === 'b%d' ? [1] : [])], `${r.args.join(' ')}: ${r.stderr}`).toContain(r.code);
      expect(r.stderr).not.toMatch(/at .*\.m?js:\d+/); // no stack trace
    }
    // the first `create b%d --count 4` to get the create lock makes all four: at least that call succeeds
    expect(results.filter((r) => r.code === 0).length).toBeGreaterThan(0);

    const names = fx.rt.store.names();
    const entries = fs.readdirSync(fx.rt.layout.contextsDir);
    expect(entries.filter((e) => e.startsWith('.'))).toEqual([]); // no half-created or half-destroyed context
    const byXid = new Map<number, string>();
    for (const n of names) {
      const c = fx.rt.store.readConfig(n);
      expect(byXid.get(c.xid), `xid ${c.xid} of ${n}`).toBeUndefined();
      byXid.set(c.xid, n);
      expect(fx.rt.xids.ownerOf(c.xid)).toBe(n);
      const live = fx.rt.store.live(n) !== undefined;
      expect(fx.rt.cgroupOf(n).exists(), `cgroup of ${n}`).toBe(live);
      expect(fs.existsSync(fx.rt.layout.execPlanFile(n)), `exec plan of ${n}`).toBe(live);
    }
    // every claim belongs to a context that holds it: none leaked by a destroy or a refused create
    const claims = fs.readdirSync(path.join(fx.root, 'xids')).filter((f) => !f.startsWith('.'));
    expect(claims.sort()).toEqual([...byXid.keys()].map(String).sort());
    const addrClaims = claimKeys(path.join(fx.root, 'addrs'));
    expect(addrClaims.sort()).toEqual(names.flatMap((n) => fx.rt.store.readConfig(n).net.addresses).sort());
    expect(fs.existsSync(fx.rt.layout.locksDir) ? fs.readdirSync(fx.rt.layout.locksDir) : []).toEqual([]);
    expect(names.filter((n) => n.startsWith('b'))).toEqual(['b1', 'b2', 'b3', 'b4']);
  }, 300_000);
});
