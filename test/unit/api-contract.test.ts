// The API's contract without a kernel: docs/openapi.yaml passes a real
// OpenAPI linter (Redocly's recommended rules, from the devDependency
// @redocly/cli), the version it answers is package.json's, and the main
// process's events come from state changes once each, in order, also when
// several changes fall between two looks.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mainEvents } from '../../src/api/mainevents.js';
import { PAENE_VERSION } from '../../src/api/version.js';
import type { MainState } from '../../src/model/service.js';

const repo = path.resolve(import.meta.dirname, '../..');

describe('docs/openapi.yaml', () => {
  it('lints clean under Redocly (no error, no warning)', () => {
    const cli = path.join(repo, 'node_modules/@redocly/cli/bin/cli.js');
    const r = spawnSync(process.execPath, [cli, 'lint', 'docs/openapi.yaml', '--format=json'], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 60_000,
      // no telemetry or update check: the tests run without the network
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', CI: 'true' },
    });
    const json = r.stdout.slice(r.stdout.indexOf('{'));
    const report = JSON.parse(json) as { totals: { errors: number; warnings: number }; problems: { message: string; location: unknown }[] };
    expect(report.problems.map((p) => `${p.message} ${JSON.stringify(p.location)}`)).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
    expect(r.status, r.stderr).toBe(0);
  }, 90_000);

  it('names every route of the service', () => {
    const spec = fs.readFileSync(path.join(repo, 'docs/openapi.yaml'), 'utf8');
    const server = fs.readFileSync(path.join(repo, 'src/api/server.ts'), 'utf8');
    for (const p of [
      '/v1/version',
      '/v1/contexts/{name}/kill',
      '/v1/contexts/{name}/restart',
      '/v1/contexts/{name}/stats',
      '/v1/contexts/{name}/limits',
      '/v1/images/{image}',
    ])
      expect(spec).toContain(`  ${p}:`);
    for (const verb of ['kill', 'restart', 'stats', 'limits', 'exec', 'logs', 'ps', 'start', 'stop'])
      expect(server).toContain(`ctx('/${verb}')`);
  });
});

describe('the API version', () => {
  it("is package.json's", () => {
    expect(PAENE_VERSION).toBe((JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version);
  });
});

describe('main-process events', () => {
  const st = (state: MainState['state'], restarts: number, more: Partial<MainState> = {}): MainState => ({
    state,
    restarts,
    at: '2026-12-07T00:00:00.000000000Z',
    ...more,
  });
  const types = (prev: Pick<MainState, 'state' | 'restarts'>, cur: MainState) =>
    mainEvents(prev, cur).map((e) => `${e.type}:${e.detail.restarts}`);

  it('tells each change once', () => {
    expect(types({ state: 'running', restarts: 0 }, st('running', 0))).toEqual([]);
    expect(types({ state: 'running', restarts: 0 }, st('restarting', 0, { code: 3 }))).toEqual(['main-exited:0']);
    expect(types({ state: 'restarting', restarts: 0 }, st('restarting', 0, { code: 3 }))).toEqual([]);
    expect(types({ state: 'restarting', restarts: 0 }, st('running', 1, { code: 3 }))).toEqual(['main-restarted:1']);
    expect(types({ state: 'exited', restarts: 2 }, st('gave-up', 2, { code: 3 }))).toEqual(['main-gave-up:2']);
    expect(types({ state: 'gave-up', restarts: 2 }, st('gave-up', 2, { code: 3 }))).toEqual([]);
  });

  it('loses none when several changes fall between two looks', () => {
    expect(types({ state: 'running', restarts: 0 }, st('gave-up', 2, { code: 3 }))).toEqual([
      'main-exited:0',
      'main-restarted:1',
      'main-exited:1',
      'main-restarted:2',
      'main-exited:2',
      'main-gave-up:2',
    ]);
    const quick = mainEvents({ state: 'running', restarts: 4 }, st('running', 5, { signal: 9 }));
    expect(quick).toEqual([
      { type: 'main-exited', detail: { restarts: 4, signal: 9, state: 'restarting' } },
      { type: 'main-restarted', detail: { restarts: 5 } },
    ]);
    // an exit of an earlier run than the last is marked as seen late
    expect(mainEvents({ state: 'running', restarts: 0 }, st('running', 2, { code: 1 }))[0]?.detail).toMatchObject({ missed: 1 });
  });

  it('says how the run ended', () => {
    expect(mainEvents({ state: 'running', restarts: 0 }, st('killed', 0, { signal: 15 }))).toEqual([
      { type: 'main-exited', detail: { restarts: 0, signal: 15, state: 'killed' } },
    ]);
    expect(mainEvents({ state: 'running', restarts: 0 }, st('failed', 0, { code: 127, error: 'ENOENT' }))).toEqual([
      { type: 'main-exited', detail: { restarts: 0, code: 127, error: 'ENOENT', state: 'failed' } },
    ]);
  });
});
