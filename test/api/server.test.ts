// The resident API on the real kernel: every verb over the unix socket,
// errors as codes, and the event stream (what it did, an init that died, a
// pids limit hit).

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ApiServer, type PaeneEvent } from '../../src/api/server.js';
import { DEFAULT_LIMITS } from '../../src/model/limits.js';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';
import { lines, request } from './request.js';

describeReal('paene serve: the JSON API', () => {
  let server: ApiServer;
  let socket: string;
  const events: PaeneEvent[] = [];
  let stream: http.ClientRequest;

  /** Waits (bounded) until an event of this type for this context arrived. */
  const eventually = async (type: PaeneEvent['type'], context: string) => {
    for (let i = 0; i < 150 && !events.some((e) => e.type === type && e.context === context); i++)
      await new Promise((r) => setTimeout(r, 100));
    return events.find((e) => e.type === type && e.context === context);
  };

  const fx = useRuntime(
    'api',
    async () => {
      socket = path.join(fx.root, 'run', 'api.sock');
      server = new ApiServer(fx.rt, { socket, watchMs: 200 });
      await server.listen();
      await new Promise<void>((resolve) => {
        stream = http.get({ socketPath: socket, path: '/v1/events' }, (res) => {
          let buf = '';
          res.setEncoding('utf8').on('data', (d: string) => {
            buf += d;
            for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
              events.push(JSON.parse(buf.slice(0, i)) as PaeneEvent);
              buf = buf.slice(i + 1);
            }
          });
          resolve();
        });
      });
    },
    { setup: 60_000 },
  );

  afterAll(async () => {
    stream?.destroy();
    await server?.close();
  }, 120_000);

  it('is root-only by default', () => {
    expect(fs.statSync(socket).mode & 0o777).toBe(0o600);
  });

  it('creates, starts, execs, lists, stops and destroys; refusals carry the error code', async () => {
    const made = await request(socket, 'POST', '/v1/contexts', { name: 'a%d', count: 2, net: 'none' });
    expect(made.status).toBe(200);
    expect((made.json as { ok: boolean }[]).map((r) => r.ok)).toEqual([true, true]);
    expect((await request(socket, 'POST', '/v1/contexts', { name: 'a1' })).json).toMatchObject({ error: { code: 'exists' } });
    expect((await request(socket, 'POST', '/v1/contexts/a1/start')).json).toMatchObject({ name: 'a1', state: 'running' });
    const ex = await request(socket, 'POST', '/v1/contexts/a1/exec', { argv: ['sh', '-c', 'hostname; exit 3'] });
    expect(ex.json).toEqual({ code: 3, stdout: 'a1\n', stderr: '' });
    const list = await request(socket, 'GET', '/v1/contexts');
    expect((list.json as { name: string; state: string }[]).map((c) => [c.name, c.state])).toEqual([
      ['a1', 'running'],
      ['a2', 'stopped'],
    ]);
    expect(await request(socket, 'POST', '/v1/contexts/a2/exec', { argv: ['true'] })).toMatchObject({
      status: 409,
      json: { error: { code: 'wrong-state' } },
    });
    expect(await request(socket, 'POST', '/v1/contexts/a1/exec', { argv: 'true' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'GET', '/v1/contexts/ghost')).toMatchObject({ status: 404, json: { error: { code: 'not-found' } } });
    expect(await request(socket, 'GET', '/v1/nothing')).toMatchObject({ status: 404 });
    expect((await request(socket, 'POST', '/v1/contexts/a1/stop', { timeout: 2 })).json).toEqual({ wasRunning: true });
    for (const n of ['a1', 'a2']) expect((await request(socket, 'DELETE', `/v1/contexts/${n}`)).status).toBe(200);
    expect(fx.rt.store.names()).toEqual([]);
    for (const [type, ctx] of [
      ['created', 'a1'],
      ['created', 'a2'],
      ['started', 'a1'],
      ['stopped', 'a1'],
      ['destroyed', 'a1'],
      ['destroyed', 'a2'],
    ] as const) {
      expect(await eventually(type, ctx), `${type} ${ctx}`).toBeDefined();
    }
  }, 120_000);

  it('reports a pids limit hit, a stop by someone else, and an init that died', async () => {
    await fx.rt.create({
      name: 'lim',
      image: 'base',
      net: { mode: 'none', addresses: [], publish: [] },
      limits: { ...DEFAULT_LIMITS, nproc: 8 },
    });
    expect((await request(socket, 'POST', '/v1/contexts/lim/start')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 500)); // the watcher has seen it running
    // 20 sleepers against a limit of 8 processes: forks are refused (bounded: they end in 2 s)
    await request(socket, 'POST', '/v1/contexts/lim/exec', {
      argv: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do sleep 2 & done 2>/dev/null; wait'],
      timeout: 30,
    });
    expect(await eventually('limit', 'lim')).toMatchObject({ detail: { limit: 'pids' } });
    // stopped by someone else (as a CLI would): seen as stopped, not as died
    await fx.rt.stop('lim', { timeoutMs: 2000 });
    expect(await eventually('stopped', 'lim')).toBeDefined();
    expect(events.some((e) => e.type === 'exited' && e.context === 'lim')).toBe(false);
    await fx.rt.start('lim');
    await new Promise((r) => setTimeout(r, 500));
    const live = fx.rt.store.live('lim');
    expect(live).toBeDefined();
    process.kill(live?.pid as number, 'SIGKILL');
    expect(await eventually('exited', 'lim')).toBeDefined();
  }, 120_000);

  /** The main-process events of a context, in order, as type[:detail words]. */
  const mainEvents = (context: string) =>
    events
      .filter((e) => e.context === context && e.type.startsWith('main-'))
      .map((e): Record<string, number | string> => ({ type: e.type, ...e.detail }));

  it('creates with a main process and a restart policy; its exits, restarts and give-up come as events, in order', async () => {
    const made = await request(socket, 'POST', '/v1/contexts', {
      name: 'svc',
      net: 'none',
      main: { argv: ['sh', '-c', 'exit 3'], env: { A: 'b' }, cwd: '/' },
      restart: 'on-failure:2',
      logSize: '64K',
      logKeep: 2,
      autostart: { order: 5 },
    });
    expect(made.status, JSON.stringify(made.json)).toBe(200);
    expect(made.json).toMatchObject({
      main: { argv: ['sh', '-c', 'exit 3'], env: { A: 'b' } },
      restart: { mode: 'on-failure', maxRestarts: 2 },
      log: { maxBytes: 65536, keep: 2 },
      autostart: { order: 5 },
    });
    expect((await request(socket, 'POST', '/v1/contexts/svc/start')).status).toBe(200);
    for (let i = 0; i < 100 && !mainEvents('svc').some((e) => e.type === 'main-gave-up'); i++) await new Promise((r) => setTimeout(r, 100));
    const seen = mainEvents('svc');
    expect(seen.map((e) => e.type)).toEqual([
      'main-exited',
      'main-restarted',
      'main-exited',
      'main-restarted',
      'main-exited',
      'main-gave-up',
    ]);
    expect(seen.map((e) => e.restarts)).toEqual([0, 1, 1, 2, 2, 2]);
    expect(seen[4]).toMatchObject({ code: 3, state: 'gave-up' });
    const st = await request(socket, 'GET', '/v1/contexts/svc');
    expect(st.json).toMatchObject({
      main: { argv: ['sh', '-c', 'exit 3'], restart: 'on-failure:2', state: 'gave-up', code: 3, restarts: 2 },
    });
    const list = (await request(socket, 'GET', '/v1/contexts')).json as { name: string; main?: unknown }[];
    expect(list.find((c) => c.name === 'svc')?.main).toMatchObject({ state: 'gave-up' });
    // nothing told twice: a while later the same events
    await new Promise((r) => setTimeout(r, 600));
    expect(mainEvents('svc')).toHaveLength(6);
    await fx.rt.destroy('svc', { force: true });
  }, 120_000);

  it('refuses bad service fields with 422', async () => {
    for (const body of [
      { name: 'bad', main: { argv: [] } },
      { name: 'bad', main: 'nothing' },
      { name: 'bad', restart: 'sometimes' },
      { name: 'bad', restart: 'always:3' },
      { name: 'bad', logSize: 10 },
      { name: 'bad', logKeep: -1 },
      { name: 'bad', autostart: { order: -1 } },
      { name: 'bad', init: 'relative/init' },
      { name: 'bad', init: 'guest', main: { argv: ['true'] } },
      { name: 'bad', colour: 'blue' },
    ]) {
      const r = await request(socket, 'POST', '/v1/contexts', body);
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(r.json).toMatchObject({ error: { code: 'invalid-argument' } });
    }
    expect(fx.rt.store.names()).not.toContain('bad');
  });

  it('kills the main process (its policy restarts it) and restarts the context', async () => {
    const made = await request(socket, 'POST', '/v1/contexts', {
      name: 'k1',
      net: 'none',
      main: { argv: ['sleep', '1000'] },
      restart: 'always',
    });
    expect(made.status, JSON.stringify(made.json)).toBe(200);
    expect((await request(socket, 'POST', '/v1/contexts/k1/start')).status).toBe(200);
    for (let i = 0; i < 50 && fx.rt.status('k1').main?.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 400)); // the watcher has seen it run
    expect(await request(socket, 'POST', '/v1/contexts/k1/kill', { signal: 'bogus' })).toMatchObject({ status: 422 });
    const k = await request(socket, 'POST', '/v1/contexts/k1/kill', { signal: 'KILL' });
    expect(k.status, JSON.stringify(k.json)).toBe(200);
    expect(k.json).toMatchObject({ signal: 'SIGKILL' });
    for (let i = 0; i < 50 && !mainEvents('k1').some((e) => e.type === 'main-restarted'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(mainEvents('k1')).toEqual([
      { type: 'main-exited', restarts: 0, signal: 9, state: 'restarting' },
      { type: 'main-restarted', restarts: 1 },
    ]);
    const r = await request(socket, 'POST', '/v1/contexts/k1/restart', { timeout: 2 });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json).toMatchObject({ name: 'k1', state: 'running' });
    expect(await eventually('started', 'k1')).toBeDefined();
    expect(await request(socket, 'POST', '/v1/contexts/k1/restart', { timeout: -1 })).toMatchObject({ status: 422 });
    await fx.rt.destroy('k1', { force: true });
  }, 120_000);

  it("ends an exec's command and what it started inside the context at its timeout", async () => {
    await request(socket, 'POST', '/v1/contexts', { name: 'ex', net: 'none' });
    expect((await request(socket, 'POST', '/v1/contexts/ex/start')).status).toBe(200);
    const sleepers = () => fx.rt.ps('ex').filter((p) => p.command.includes('sleep'));
    // every process of the context in any of its cgroups, child groups too (ps reads its own group only)
    const anywhere = (word: string) => {
      const pids = new Set<number>();
      const walk = (d: string) => {
        for (const l of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
        for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
      };
      for (const d of fx.rt.cgroupOf('ex').dirs()) if (fs.existsSync(d)) walk(d);
      return [...pids].filter((pid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(word);
        } catch {
          return false;
        }
      });
    };
    const execGroups = () => fs.readdirSync(fx.rt.cgroupOf('ex').unifiedDir as string).filter((e) => e.startsWith('paene-exec-'));
    for (const [argv, out] of [
      [['sh', '-c', 'sleep 15 & echo bg'], 'bg\n'],
      [['sleep', '12'], ''],
      [['sh', '-c', 'sh -c "sleep 13 & sleep 14" & sleep 15'], ''],
      // what clears its environment, starts a session of its own or is reparented to init: still the exec's (issue 24)
      [['env', '-i', 'sh', '-c', 'sleep 16 & echo bg'], 'bg\n'],
      [['sh', '-c', 'setsid env -i sh -c "sleep 17 &" & sleep 18'], ''],
    ] as const) {
      const t0 = Date.now();
      const r = await request(socket, 'POST', '/v1/contexts/ex/exec', { argv, timeout: 2 });
      const took = Date.now() - t0;
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.json).toMatchObject({ timedOut: true, stdout: out });
      expect(took, argv.join(' ')).toBeGreaterThanOrEqual(1900);
      // the sleeps last 12-18 s: an answer well before them is the timeout's (a bound that holds under load)
      expect(took, argv.join(' ')).toBeLessThan(11_000);
      expect(sleepers(), argv.join(' ')).toEqual([]);
      expect(anywhere('sleep'), argv.join(' ')).toEqual([]);
      expect(execGroups()).toEqual([]);
    }
    // one that ends in time leaves what it started running (a daemon), in the context's own group
    const daemon = await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['sh', '-c', 'sleep 19 >/dev/null 2>&1 &'], timeout: 5 });
    expect(daemon.json).toMatchObject({ code: 0 });
    expect(sleepers()).toHaveLength(1);
    expect(execGroups()).toEqual([]);
    for (const p of sleepers()) process.kill(p.pid, 'SIGKILL');
    // while an exec runs, its processes (in its child group) are the context's: ps sees them
    const running = request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['sleep', '8'], timeout: 30 });
    // (by its whole command: the daemon just killed may linger a moment as a zombie of the init)
    const execSleeps = () => fx.rt.ps('ex').filter((p) => p.command === 'sleep 8');
    let seen = 0;
    for (let i = 0; i < 100 && seen === 0; i++) {
      seen = execSleeps().length;
      if (seen === 0) await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).toBe(1);
    expect((await running).json).toMatchObject({ code: 0 });
    // one that ends in time is not marked
    expect((await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['true'], timeout: 5 })).json).toEqual({
      code: 0,
      stdout: '',
      stderr: '',
    });
    // a user by name or ids, an environment, and a detached command
    const who = await request(socket, 'POST', '/v1/contexts/ex/exec', {
      argv: ['sh', '-c', 'id -u; id -g; echo $FOO'],
      user: '1000:1001',
      env: { FOO: 'bar' },
    });
    expect(who.json).toMatchObject({ code: 0, stdout: '1000\n1001\nbar\n' });
    expect((await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['id', '-u'], user: 'root' })).json).toMatchObject({
      stdout: '0\n',
    });
    expect(await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['id'], user: 'no body' })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['id'], user: 'root', uid: 0 })).toMatchObject({ status: 422 });
    const d = await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['sleep', '30'], detach: true });
    expect(d.status, JSON.stringify(d.json)).toBe(200);
    expect(d.json).toMatchObject({ pid: expect.any(Number), innerPid: expect.any(Number) });
    expect(sleepers().map((p) => p.pid)).toContain((d.json as { pid: number }).pid);
    expect(await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['sleep', '1'], detach: true, timeout: 1 })).toMatchObject({
      status: 422,
    });
    expect(await request(socket, 'POST', '/v1/contexts/ex/exec', { argv: ['nothing-here'], detach: true })).toMatchObject({
      status: 404,
    });
    process.kill((d.json as { pid: number }).pid, 'SIGKILL');
  }, 120_000);

  it('bounds counts, sizes and numbers: 413, 422, 405 with Allow', async () => {
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'x%d', count: 200_000 })).toMatchObject({
      status: 413,
      json: { error: { code: 'limit-exceeded' } },
    });
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'm%0999999999d', count: 1 })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'x%d', count: 0 })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/contexts', { name: 'x%d', count: 1.5 })).toMatchObject({ status: 422 });
    for (const body of [
      { argv: ['true'], timeout: -1 },
      { argv: ['true'], uid: -1 },
      { argv: ['true'], uid: 1.5 },
      { argv: ['true'], timeout: 1e9 },
    ])
      expect(await request(socket, 'POST', '/v1/contexts/ex/exec', body), JSON.stringify(body)).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/contexts/ex/stop', { timeout: -1 })).toMatchObject({ status: 422 });
    expect(await request(socket, 'POST', '/v1/contexts', undefined, '{"name":')).toMatchObject({ status: 400 });
    const big = await request(socket, 'POST', '/v1/contexts', undefined, `{"name":"${'a'.repeat(2 << 20)}"}`);
    expect(big.status).toBe(413);
    for (const [method, url, allow] of [
      ['PUT', '/v1/contexts', 'GET, POST'],
      ['GET', '/v1/contexts/ex/start', 'POST'],
      ['POST', '/v1/contexts/ex/logs', 'GET'],
      ['DELETE', '/v1/events', 'GET'],
      ['POST', '/v1/contexts/ex/limits', 'GET, PATCH'],
    ] as const) {
      const r = await request(socket, method, url);
      expect(r.status, `${method} ${url}`).toBe(405);
      expect(r.headers.allow).toBe(allow);
    }
    expect(await request(socket, 'GET', '/v1/contexts/ex/nothing')).toMatchObject({ status: 404 });
  });

  it('answers stats (once and streamed), limits, images and the version', async () => {
    const s = await request(socket, 'GET', '/v1/contexts/ex/stats?interval=200');
    expect(s.status, JSON.stringify(s.json)).toBe(200);
    expect(s.json).toMatchObject({ name: 'ex', processes: expect.any(Number), memoryBytes: expect.any(Number) });
    expect((s.json as Record<string, unknown>).sample).toBeUndefined();
    const streamed = await lines(socket, '/v1/contexts/ex/stats?stream=1&interval=100', 3);
    expect(streamed.map((l) => (JSON.parse(l) as { name: string }).name)).toEqual(['ex', 'ex', 'ex']);
    expect(await request(socket, 'GET', '/v1/contexts/ex/stats?interval=5')).toMatchObject({ status: 400 });
    expect(await request(socket, 'GET', '/v1/contexts/ghost/stats')).toMatchObject({ status: 404 });

    expect((await request(socket, 'GET', '/v1/contexts/ex/limits')).json).toMatchObject({ name: 'ex', limits: { nproc: 1024 } });
    const p = await request(socket, 'PATCH', '/v1/contexts/ex/limits', { nproc: 64, memory: '256M' });
    expect(p.status, JSON.stringify(p.json)).toBe(200);
    expect(p.json).toMatchObject({ name: 'ex', live: true, limits: { nproc: 64, memory: 256 * 1024 * 1024 } });
    expect(fx.rt.config('ex').limits).toMatchObject({ nproc: 64 });
    expect((await request(socket, 'PATCH', '/v1/contexts/ex/limits', { memory: null })).json).not.toHaveProperty('limits.memory');
    for (const body of [{ colour: 1 }, {}, { nproc: -5 }, { nproc: [1] }])
      expect(await request(socket, 'PATCH', '/v1/contexts/ex/limits', body), JSON.stringify(body)).toMatchObject({ status: 422 });

    const imgs = (await request(socket, 'GET', '/v1/images')).json as { name: string; contexts: string[] }[];
    expect(imgs.find((i) => i.name === 'base')?.contexts).toContain('ex');
    expect(await request(socket, 'GET', '/v1/images/base')).toMatchObject({ status: 200, json: { name: 'base' } });
    expect(await request(socket, 'GET', '/v1/images/nope')).toMatchObject({ status: 404 });
    expect(await request(socket, 'DELETE', '/v1/images/base')).toMatchObject({ status: 409, json: { error: { code: 'busy' } } });
    expect(await request(socket, 'DELETE', '/v1/images/nope')).toMatchObject({ status: 404 });

    const v = await request(socket, 'GET', '/v1/version');
    expect(v.json).toMatchObject({ version: expect.any(String), api: 'v1', node: process.version });
    await fx.rt.destroy('ex', { force: true });
  }, 120_000);
});
