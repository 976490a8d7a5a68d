// `paene logs` and `paene autostart` as a user runs them (the built CLI), on a
// state root with handwritten configs and logs: no context runs, no root needed.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newConfig } from '../../src/context/config.js';
import { Layout } from '../../src/kernel/layout.js';
import { StateStore } from '../../src/runtime/state.js';
import { PAENE, runCli, tempRoot } from '../helpers.js';

let root: string;
let layout: Layout;

const paene = (args: string[]) => runCli(root, args, { timeout: 60_000 });

function rec(s: number, stream: string, tag: string, content: string): string {
  return `${new Date(Date.UTC(2026, 11, 7, 2, 40, s)).toISOString().replace('.000Z', '.000000001Z')} ${stream} ${tag} ${content}\n`;
}

beforeAll(() => {
  root = tempRoot('services');
  layout = new Layout(root);
  const store = new StateStore(layout);
  const configs = [
    newConfig({ name: 'web', xid: 2, image: 'base', autostart: { order: 20 } }),
    newConfig({ name: 'db', xid: 3, image: 'base', autostart: { order: 10 } }),
    newConfig({ name: 'worker', xid: 4, image: 'base', restart: { mode: 'unless-stopped' } }),
    newConfig({ name: 'stopped', xid: 5, image: 'base', restart: { mode: 'unless-stopped' } }),
    newConfig({ name: 'plain', xid: 6, image: 'base' }),
  ];
  for (const c of configs) {
    fs.mkdirSync(layout.contextDir(c.name), { recursive: true });
    store.writeConfig(c);
  }
  fs.writeFileSync(layout.stoppedMark('stopped'), '');
  fs.mkdirSync(layout.logDir('web'));
  fs.writeFileSync(path.join(layout.logDir('web'), 'main.log.1'), rec(1, 'stdout', 'F', 'one'));
  fs.writeFileSync(
    path.join(layout.logDir('web'), 'main.log'),
    rec(2, 'stderr', 'P', 'tw') + rec(3, 'stderr', 'F', 'o') + rec(4, 'stdout', 'F', 'three'),
  );
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('paene logs', () => {
  it('prints the lines, a tail, a time range, timestamps, a stream, JSON', () => {
    expect(paene(['logs', 'web'])).toMatchObject({ code: 0, stdout: 'one\ntwo\nthree\n' });
    expect(paene(['logs', 'web', '--tail', '2', '-t']).stdout).toBe(
      '2026-12-07T02:40:02.000000001Z two\n2026-12-07T02:40:04.000000001Z three\n',
    );
    expect(paene(['logs', 'web', '--since', '2026-12-07T02:40:03Z']).stdout).toBe('three\n');
    expect(paene(['logs', 'web', '--stream', 'stderr']).stdout).toBe('two\n');
    expect(paene(['logs', 'web', '-n', '1', '--json']).stdout).toBe(
      '{"time":"2026-12-07T02:40:04.000000001Z","stream":"stdout","line":"three"}\n',
    );
  });

  it('is empty for a context without a log, an error for an unknown one or a bad flag', () => {
    expect(paene(['logs', 'db'])).toMatchObject({ code: 0, stdout: '' });
    const r = paene(['logs', 'nope']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no context named 'nope'/);
    expect(paene(['logs', 'web', '--tail', 'x']).code).toBe(2);
    expect(paene(['logs', 'web', '--since', 'soon']).code).toBe(2);
    expect(paene(['logs', 'web', '--stream', 'stdin']).code).toBe(2);
  });

  it('follows until SIGINT, then exits 0', async () => {
    const child = spawn(PAENE, ['--root', root, 'logs', 'web', '-f', '--tail', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const until = async (text: string) => {
      for (let i = 0; i < 500 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 20));
      return out;
    };
    expect(await until('three\n')).toBe('three\n');
    fs.appendFileSync(path.join(layout.logDir('web'), 'main.log'), rec(5, 'stdout', 'F', 'four'));
    expect(await until('four\n')).toBe('three\nfour\n');
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.kill('SIGINT');
    expect(await code).toBe(0);
  });

  it('following, ends quietly when its reader goes', async () => {
    const child = spawn(PAENE, ['--root', root, 'logs', 'web', '-f'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.stdout.destroy();
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    fs.appendFileSync(path.join(layout.logDir('web'), 'main.log'), rec(6, 'stdout', 'F', 'five'));
    expect(await code).toBe(0);
    expect(err).toBe('');
  });
});

describe('paene autostart', () => {
  it('plans by order, then the restart policies, leaving out what a user stopped', () => {
    const dry = paene(['autostart', '--dry-run']);
    expect(dry).toMatchObject({
      code: 0,
      stdout: 'order 10: db\norder 20: web\nthen (restart policy): worker\nskip stopped: stopped by user\n',
    });
    const plan = JSON.parse(paene(['autostart', '--dry-run', '--json']).stdout);
    expect(plan.groups).toEqual([{ order: 10, names: ['db'] }, { order: 20, names: ['web'] }, { names: ['worker'] }]);
    expect(plan.why).toEqual({ db: 'autostart', web: 'autostart', worker: 'restart unless-stopped' });
  });

  it('writes the boot files with this paene and root', () => {
    const dest = path.join(root, 'boot');
    fs.mkdirSync(dest);
    const r = paene(['autostart', 'install', '--systemd', '--dest', dest]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('systemctl daemon-reload && systemctl enable paene-autostart.service');
    expect(fs.readFileSync(path.join(dest, 'paene-autostart.service'), 'utf8')).toContain(`ExecStart=${PAENE} --root ${root} autostart\n`);
    expect(paene(['autostart', 'install', '--sysv', '--dest', dest]).code).toBe(0);
    expect(fs.readFileSync(path.join(dest, 'paene-autostart'), 'utf8')).toContain(`PAENE="${PAENE} --root ${root}"\n`);
    expect(paene(['autostart', 'install', '--sysv', '--systemd', '--dest', dest]).code).toBe(2);
  });

  it('stops at shutdown only what runs (nothing here)', () => {
    expect(paene(['autostart', 'stop'])).toMatchObject({ code: 0, stdout: 'nothing runs\n' });
    expect(paene(['autostart', 'stop', '--json'])).toMatchObject({ code: 0, stdout: '[]\n' });
    expect(paene(['autostart', 'stop', '-t', 'x']).code).toBe(2);
  });
});
