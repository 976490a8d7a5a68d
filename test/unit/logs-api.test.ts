// GET /v1/contexts/NAME/logs on a service whose runtime knows one context
// (a stand-in: the endpoint needs only its config and its log directory).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer } from '../../src/api/server.js';
import { Layout } from '../../src/kernel/layout.js';
import { PaeneError } from '../../src/model/errors.js';
import type { Runtime } from '../../src/runtime/runtime.js';

let root: string;
let server: ApiServer;
let socket: string;
let logDir: string;

function rec(s: number, stream: string, tag: string, content: string): string {
  return `2026-12-07T02:40:${String(s).padStart(2, '0')}.5Z ${stream} ${tag} ${content}\n`;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-logs-api-'));
  const layout = new Layout(root);
  logDir = layout.logDir('web');
  fs.mkdirSync(logDir, { recursive: true });
  fs.writeFileSync(path.join(logDir, 'main.log.1'), rec(1, 'stdout', 'F', 'one'));
  fs.writeFileSync(
    path.join(logDir, 'main.log'),
    rec(2, 'stderr', 'P', 'tw') + rec(3, 'stderr', 'F', 'o') + rec(4, 'stdout', 'F', 'three'),
  );
  const rt = {
    layout,
    store: { names: () => [] },
    config: (name: string) => {
      if (name !== 'web') throw new PaeneError('not-found', `no context named '${name}'`);
      return { name };
    },
  } as unknown as Runtime;
  socket = path.join(root, 'api.sock');
  server = new ApiServer(rt, { socket, watchMs: 60_000 });
  await server.listen();
});

afterAll(async () => {
  await server.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function get(p: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: socket, path: p }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

describe('GET /v1/contexts/NAME/logs', () => {
  it('gives the log as text, with tail, since, timestamps, streams and JSON', async () => {
    expect(await get('/v1/contexts/web/logs')).toMatchObject({ status: 200, type: 'text/plain; charset=utf-8', body: 'one\ntwo\nthree\n' });
    expect((await get('/v1/contexts/web/logs?tail=2')).body).toBe('two\nthree\n');
    expect((await get('/v1/contexts/web/logs?tail=1&timestamps=1')).body).toBe('2026-12-07T02:40:04.5Z three\n');
    expect((await get('/v1/contexts/web/logs?since=2026-12-07T02:40:02Z')).body).toBe('two\nthree\n');
    expect((await get('/v1/contexts/web/logs?stream=stdout')).body).toBe('one\nthree\n');
    const json = await get('/v1/contexts/web/logs?json=1&tail=1');
    expect(json.type).toBe('application/x-ndjson');
    expect(JSON.parse(json.body)).toEqual({ time: '2026-12-07T02:40:04.5Z', stream: 'stdout', line: 'three' });
  });

  it('is 404 for an unknown context and 400 for a bad query', async () => {
    const r = await get('/v1/contexts/nope/logs');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error.code).toBe('not-found');
    expect((await get('/v1/contexts/web/logs?tail=-1')).status).toBe(400);
    expect((await get('/v1/contexts/web/logs?since=yesterday')).status).toBe(400);
    expect((await get('/v1/contexts/web/logs?follow=maybe')).status).toBe(400);
  });

  it('streams new lines while it follows, and ends when the client goes', async () => {
    const got: string[] = [];
    const req = http.get({ socketPath: socket, path: '/v1/contexts/web/logs?follow=1&tail=1' });
    const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
    expect(res.headers['transfer-encoding']).toBe('chunked');
    res.setEncoding('utf8');
    res.on('data', (c: string) => got.push(c));
    const until = async (text: string) => {
      for (let i = 0; i < 300 && !got.join('').includes(text); i++) await new Promise((r) => setTimeout(r, 10));
      return got.join('');
    };
    expect(await until('three\n')).toBe('three\n');
    fs.appendFileSync(path.join(logDir, 'main.log'), rec(5, 'stdout', 'F', 'four'));
    expect(await until('four\n')).toBe('three\nfour\n');
    fs.renameSync(path.join(logDir, 'main.log'), path.join(logDir, 'main.log.1'));
    fs.writeFileSync(path.join(logDir, 'main.log'), rec(6, 'console', 'F', 'five'));
    expect(await until('five\n')).toBe('three\nfour\nfive\n');
    req.destroy();
  });
});

describe('serve --autostart', () => {
  it('starts the plan as the service, with a started event each, going on after a failure', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-autostart-api-'));
    const configs: Record<string, unknown> = {
      late: { name: 'late', restart: { mode: 'always' } },
      first: { name: 'first', autostart: { order: 1 } },
      broken: { name: 'broken', autostart: { order: 1 } },
      second: { name: 'second', autostart: { order: 2 } },
      idle: { name: 'idle' },
    };
    const started: string[] = [];
    const rt = {
      layout: new Layout(dir),
      store: { names: () => Object.keys(configs).sort(), readConfigIfAny: (n: string) => configs[n], live: () => undefined },
      cgroupOf: () => ({ read: () => undefined }),
      start: async (n: string) => {
        if (n === 'broken') throw new PaeneError('not-found', "no image named 'gone'");
        started.push(n);
        return { name: n, state: 'running' };
      },
    } as unknown as Runtime;
    const sock = path.join(dir, 'api.sock');
    const api = new ApiServer(rt, { socket: sock, watchMs: 60_000 });
    await api.listen();
    try {
      let events = '';
      const req = http.get({ socketPath: sock, path: '/v1/events' });
      const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
      res.setEncoding('utf8').on('data', (d: string) => (events += d));
      const heard: string[] = [];
      const results = await api.autostart(2, (r) => heard.push(`${r.name}:${r.outcome.ok}`));
      expect(started).toEqual(['first', 'second', 'late']);
      expect(results.map((r) => [r.name, r.outcome.ok])).toEqual([
        ['broken', false],
        ['first', true],
        ['second', true],
        ['late', true],
      ]);
      expect(heard.sort()).toEqual(['broken:false', 'first:true', 'late:true', 'second:true']);
      for (let i = 0; i < 100 && events.split('\n').length < 4; i++) await new Promise((r) => setTimeout(r, 10));
      expect(
        events
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l))
          .map((e) => `${e.type} ${e.context}`),
      ).toEqual(['started first', 'started second', 'started late']);
      req.destroy();
    } finally {
      await api.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
