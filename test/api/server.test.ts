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
import { request } from './request.js';

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
    expect(await request(socket, 'POST', '/v1/contexts/a1/exec', { argv: 'true' })).toMatchObject({ status: 400 });
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
});
