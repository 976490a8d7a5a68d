// `paene serve` under a burst (issue 24): 2,000 requests of every refusal
// and read, 200 at once, each round with a create of a whole set of 1,000,
// and a body over the largest. Nothing answers with a 500, a request during
// the burst is not held for seconds, and the service's memory stays where
// the first burst took it: V8 keeps the heap a burst grew (about 50 MiB
// here, which a full GC does not give back either), but a second and a third
// burst add nothing to it (before the bounds, one create with count 200,000
// took the service from 73 to 510 MiB, and it stayed there).
//
// Then 100 calls of every kind at once on five overlapping names (creates
// with profiles, starts, stops, restarts, destroys, execs, limits, stats,
// archives in and out, profile changes, reads), three rounds: after each,
// no context half made or twice claimed, no claim, lock or exec group left;
// the service's RSS is printed (a generous bound only: V8 keeps a heap).

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openRuntime } from '../../src/runtime/open.js';
import { PAENE, describeReal, disposeRuntime, harnessMs, tempRoot } from '../helpers.js';
import { request, requestRaw } from './request.js';

/** Resident memory of a process (KiB). */
function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
}

describeReal('paene serve: a burst of requests', () => {
  let root: string;
  let socket: string;
  let serve: ChildProcess;

  beforeAll(async () => {
    root = tempRoot('burst');
    socket = path.join(root, 'run', 'api.sock');
    serve = spawn(PAENE, ['--root', root, 'serve'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
    expect(fs.existsSync(socket)).toBe(true);
  }, 30_000);

  afterAll(async () => {
    if (serve?.pid !== undefined && serve.exitCode === null) {
      const gone = new Promise((r) => serve.once('exit', r));
      serve.kill('SIGTERM');
      await gone;
    }
    // the contexts the calls of every kind made go with the root
    if (root) await disposeRuntime(openRuntime(root), root);
  }, 120_000);

  it('answers every request with its refusal or its answer, keeps answering, and its memory stays where the first burst took it', async () => {
    const pid = serve.pid as number;
    const kinds: [string, string, unknown, number][] = [
      ['POST', '/v1/contexts', { name: 'x%d', count: 200_000 }, 413],
      ['POST', '/v1/contexts', { name: 'm%0999999999d', count: 1 }, 422],
      ['POST', '/v1/contexts/ghost/exec', { argv: ['true'], timeout: -1 }, 422],
      ['PUT', '/v1/contexts', undefined, 405],
      ['GET', '/v1/contexts', undefined, 200],
      ['GET', '/v1/version', undefined, 200],
      ['GET', '/v1/images', undefined, 200],
      ['GET', '/v1/contexts/ghost', undefined, 404],
      ['PATCH', '/v1/contexts/ghost/limits', { nproc: 10 }, 404],
    ];
    // each round: n requests of every kind, and one create of a whole set of 1,000 (refused one by one: no image)
    const round = (n: number) =>
      Promise.all([
        ...Array.from({ length: n }, async (_, i) => {
          const [method, url, body, status] = kinds[i % kinds.length] as (typeof kinds)[number];
          const r = await request(socket, method, url, body);
          expect(r.status, `${method} ${url}: ${JSON.stringify(r.json).slice(0, 300)}`).toBe(status);
        }),
        (async () => {
          const r = await request(socket, 'POST', '/v1/contexts', { name: 'n%d', count: 1000, image: 'missing', net: 'none' });
          expect(r.status).toBe(200);
          expect((r.json as { ok: boolean }[]).filter((c) => !c.ok)).toHaveLength(1000);
        })(),
      ]);
    const burst = async () => {
      for (let i = 0; i < 10; i++) await round(200);
    };
    const start = rssKiB(pid);
    await burst(); // the first: every path's code loaded, the heap grown to what a burst needs
    await new Promise((r) => setTimeout(r, 1000));
    const warm = rssKiB(pid);
    let slowest = 0;
    const probe = (async () => {
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now();
        expect((await request(socket, 'GET', '/v1/version')).status).toBe(200);
        slowest = Math.max(slowest, Date.now() - t0);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    const b0 = Date.now();
    await burst();
    const burstMs = Date.now() - b0;
    const big = await request(socket, 'POST', '/v1/contexts', undefined, `{"name":"${'a'.repeat(8 << 20)}"}`);
    expect(big.status).toBe(413);
    await probe;
    // answered beside the burst, not behind it: within 3 s (stretched by the machine's load), or at worst
    // within half the burst's own time (which a loaded machine stretches alike)
    expect(slowest, `a request during the burst (ms; the burst took ${burstMs} ms)`).toBeLessThan(Math.max(harnessMs(3000), burstMs / 2));
    // The heap settles over the next burst (the 8 MiB body above and a loaded machine's late collections grew it by
    // 16.5 MiB once: CI run 25); a leak grows it again with every burst after that.
    await burst();
    await new Promise((r) => setTimeout(r, 1000));
    const settled = rssKiB(pid);
    await burst();
    await burst();
    await new Promise((r) => setTimeout(r, 1000));
    const after = rssKiB(pid);
    const said = `RSS ${start} KiB at the start, ${warm} KiB after the first burst, ${settled} KiB after the third, ${after} KiB after two more`;
    console.log(said);
    expect(after - settled, said).toBeLessThan(16 * 1024);
    expect(after - start, said).toBeLessThan(120 * 1024);
  }, 180_000);

  it('100 calls of every kind at once on overlapping names, three times: no lost or duplicated state, no leaked claim, the memory back', async () => {
    const pid = serve.pid as number;
    const rt = openRuntime(root); // reads only: the service does every change
    const names = ['paene-b0', 'paene-b1', 'paene-b2', 'paene-b3', 'paene-b4'];
    const profiles = ['pb0', 'pb1', 'pb2'];
    const pack = tar.pack();
    pack.entry({ name: 'burst.txt', mode: 0o644 }, 'x\n');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    const smallTar = Buffer.concat(chunks);
    // the base image is built once, before the burst (a first start builds it)
    expect((await request(socket, 'POST', '/v1/contexts', { name: 'paene-b0', net: 'none' })).status).toBe(200);
    const first = await request(socket, 'POST', '/v1/contexts/paene-b0/start');
    expect(first.status, JSON.stringify(first.json)).toBe(200);
    const kinds: ((n: string, p: string) => Promise<{ status: number; json?: unknown }>)[] = [
      (n, p) => request(socket, 'POST', '/v1/contexts', { name: n, net: 'none', ...(n.endsWith('1') ? { profiles: [p] } : {}) }),
      (n) => request(socket, 'POST', `/v1/contexts/${n}/start`),
      (n) => request(socket, 'POST', `/v1/contexts/${n}/stop`, { timeout: 2 }),
      (n) => request(socket, 'DELETE', `/v1/contexts/${n}`, { force: true }),
      (n) => request(socket, 'POST', `/v1/contexts/${n}/exec`, { argv: ['sh', '-c', 'sleep 0.2 & echo ok'], timeout: 5 }),
      (n) => request(socket, 'POST', `/v1/contexts/${n}/restart`, { timeout: 2 }),
      (n) => request(socket, 'GET', `/v1/contexts/${n}`),
      (n) => request(socket, 'PATCH', `/v1/contexts/${n}/limits`, { nproc: 200 }),
      (n) => request(socket, 'GET', `/v1/contexts/${n}/stats?interval=100`),
      (n) => requestRaw(socket, 'GET', `/v1/contexts/${n}/archive?path=/etc/hostname`),
      (n) => request(socket, 'PUT', `/v1/contexts/${n}/archive?path=/tmp`, undefined, smallTar),
      (_n, p) => request(socket, 'POST', '/v1/profiles', { name: p, settings: { nproc: '300', net: 'none' } }),
      (_n, p) => request(socket, 'PATCH', `/v1/profiles/${p}`, { set: { memory: '128M' } }),
      (_n, p) => request(socket, 'DELETE', `/v1/profiles/${p}`),
      () => request(socket, 'GET', '/v1/net'),
      () => request(socket, 'GET', '/v1/profiles'),
      () => request(socket, 'GET', '/v1/image-usage?top=2'),
      () => request(socket, 'GET', '/v1/contexts'),
    ];
    const round = async (r: number) => {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const kind = kinds[(i + r) % kinds.length] as (typeof kinds)[number];
          return kind(names[(i * 7 + r) % names.length] as string, profiles[(i * 5 + r) % profiles.length] as string);
        }),
      );
      // an answer or a clean refusal: not found, exists or wrong state, busy
      for (const a of answers)
        expect([200, 404, 409, 503], JSON.stringify(a.json ?? (a as { body?: Buffer }).body?.toString() ?? '').slice(0, 300)).toContain(
          a.status,
        );
      for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      // what is there is whole: each context once, its xid and cgroup as its state says, no claim or lock left over
      const live = rt.store.names();
      expect(fs.readdirSync(rt.layout.contextsDir).filter((e) => e.startsWith('.'))).toEqual([]);
      const xids = new Map<number, string>();
      for (const n of live) {
        const c = rt.store.readConfig(n);
        expect(xids.get(c.xid), `xid ${c.xid} of ${n}`).toBeUndefined();
        xids.set(c.xid, n);
        expect(rt.xids.ownerOf(c.xid)).toBe(n);
        const running = rt.store.live(n) !== undefined;
        expect(rt.cgroupOf(n).exists(), `cgroup of ${n}`).toBe(running);
        const u = rt.cgroupOf(n).unifiedDir;
        if (running && u) expect(fs.readdirSync(u).filter((e) => e.startsWith('paene-exec-'))).toEqual([]);
      }
      const keys = (d: string) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => !f.startsWith('.')) : []);
      expect(keys(path.join(root, 'xids')).sort()).toEqual([...xids.keys()].map(String).sort());
      expect(keys(path.join(root, 'addrs')).sort()).toEqual(live.flatMap((n) => rt.store.readConfig(n).net.addresses).sort());
      expect(fs.existsSync(rt.layout.locksDir) ? fs.readdirSync(rt.layout.locksDir) : []).toEqual([]);
      const pdir = path.join(root, 'profiles');
      const files = fs.existsSync(pdir) ? fs.readdirSync(pdir) : [];
      expect(files.filter((f) => !/^pb\d\.json$/.test(f))).toEqual([]); // no lock, no temporary file
      for (const f of files) expect(JSON.parse(fs.readFileSync(path.join(pdir, f), 'utf8'))).toMatchObject({ name: f.slice(0, -5) });
    };
    const statuses = new Map<number, number>();
    const rss = [rssKiB(pid)];
    for (let r = 0; r < 3; r++) {
      await round(r);
      await new Promise((res) => setTimeout(res, 1000));
      rss.push(rssKiB(pid));
    }
    // everything goes: no claim is left
    for (const n of rt.store.names()) expect((await request(socket, 'DELETE', `/v1/contexts/${n}`, { force: true })).status).toBe(200);
    expect(fs.readdirSync(path.join(root, 'xids')).filter((f) => !f.startsWith('.'))).toEqual([]);
    const said = `RSS (KiB) before and after each of three rounds of 100: ${rss.join(', ')}; statuses ${JSON.stringify([...statuses].sort())}`;
    console.log(said);
    // V8 keeps what a round grew; a generous bound only (the figures are in the log): later rounds add little
    expect((rss[3] as number) - (rss[1] as number), said).toBeLessThan(64 * 1024);
    await rt.shutdownMonitor();
  }, 600_000);
});
