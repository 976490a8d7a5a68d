import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AutostartCandidate, autostartPlan, runAutostart } from '../../src/model/autostart.js';
import { installBootFile } from '../../src/runtime/autostart.js';

const contexts: AutostartCandidate[] = [
  { name: 'web2', autostart: { order: 20 } },
  { name: 'db', autostart: { order: 10 } },
  { name: 'web1', autostart: { order: 20 } },
  { name: 'cache', autostart: { order: 10 }, running: true },
  { name: 'mail', restart: { mode: 'always' } },
  { name: 'queue', restart: { mode: 'unless-stopped' } },
  { name: 'queue2', restart: { mode: 'unless-stopped' }, stoppedByUser: true },
  { name: 'batch', restart: { mode: 'on-failure' } },
  { name: 'plain' },
  { name: 'pinned', autostart: { order: 0 }, restart: { mode: 'unless-stopped' }, stoppedByUser: true },
  { name: 'late', autostart: { order: 999 }, restart: { mode: 'no' } },
];

describe('the autostart plan', () => {
  it('starts the marked ones by order, then the restart policies, skipping running and user-stopped ones', () => {
    const plan = autostartPlan(contexts);
    expect(plan.groups).toEqual([
      { order: 0, names: ['pinned'] },
      { order: 10, names: ['db'] },
      { order: 20, names: ['web1', 'web2'] },
      { order: 999, names: ['late'] },
      { names: ['mail', 'queue'] },
    ]);
    expect(plan.skipped).toEqual([
      { name: 'cache', reason: 'running' },
      { name: 'queue2', reason: 'stopped by user' },
    ]);
    expect(plan.why).toMatchObject({ pinned: 'autostart', mail: 'restart always', queue: 'restart unless-stopped' });
    expect(Object.keys(plan.why)).not.toContain('batch');
    expect(Object.keys(plan.why)).not.toContain('plain');
  });

  it('is empty with nothing to start', () => {
    expect(autostartPlan([])).toEqual({ groups: [], why: {}, skipped: [] });
    expect(autostartPlan([{ name: 'a' }, { name: 'b', restart: { mode: 'no' } }]).groups).toEqual([]);
  });
});

describe('running the plan', () => {
  it('runs each group with bounded parallelism, the next after the previous, and goes on after a failure', async () => {
    const many: AutostartCandidate[] = [
      ...Array.from({ length: 10 }, (_, i) => ({ name: `a${i}`, autostart: { order: 1 } })),
      ...Array.from({ length: 6 }, (_, i) => ({ name: `b${i}`, autostart: { order: 2 } })),
      { name: 'z', restart: { mode: 'always' as const } },
    ];
    let running = 0;
    let most = 0;
    const finished: string[] = [];
    const heard: string[] = [];
    const results = await runAutostart(
      autostartPlan(many),
      3,
      async (name) => {
        // a group starts only when the previous one is all done
        if (name.startsWith('b')) expect(finished.filter((n) => n.startsWith('a')).length).toBe(10);
        if (name === 'z') expect(finished.length).toBe(16);
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        finished.push(name);
        if (name === 'a3') throw new Error('no such image');
        return `started ${name}`;
      },
      (r) => heard.push(r.name),
    );
    expect(most).toBe(3);
    expect(results.map((r) => r.name)).toEqual([...many.slice(0, 10).map((c) => c.name), ...many.slice(10, 16).map((c) => c.name), 'z']);
    const failed = results.filter((r) => !r.outcome.ok);
    expect(failed.map((r) => [r.name, r.order, !r.outcome.ok && r.outcome.error.message])).toEqual([['a3', 1, 'no such image']]);
    expect(results.find((r) => r.name === 'z')?.outcome).toEqual({ ok: true, value: 'started z' });
    expect(heard.sort()).toEqual(results.map((r) => r.name).sort());
  });
});

describe('autostart install', () => {
  it('writes a systemd unit and a sysv script with the paene command filled in', () => {
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-boot-'));
    try {
      const unit = installBootFile({ system: 'systemd', command: ['/opt/paene/dist/native/paene', '--root', '/srv/paene'], dest });
      expect(unit.file).toBe(path.join(dest, 'paene-autostart.service'));
      expect(unit.enable).toBe('systemctl daemon-reload && systemctl enable paene-autostart.service');
      const text = fs.readFileSync(unit.file, 'utf8');
      expect(text).toContain('Type=oneshot\nRemainAfterExit=yes\n');
      expect(text).toContain('After=local-fs.target network.target\n');
      expect(text).toContain('ExecStart=/opt/paene/dist/native/paene --root /srv/paene autostart\n');
      expect(text).toContain('ExecStop=/opt/paene/dist/native/paene --root /srv/paene autostart stop\n');
      expect(text).toContain('WantedBy=multi-user.target');
      expect(text).not.toContain('@PAENE@');
      expect(fs.statSync(unit.file).mode & 0o777).toBe(0o644);

      const init = installBootFile({ system: 'sysv', command: ['/usr/local/bin/paene'], dest });
      expect(init.file).toBe(path.join(dest, 'paene-autostart'));
      const script = fs.readFileSync(init.file, 'utf8');
      expect(script.startsWith('#!/bin/sh\n### BEGIN INIT INFO\n')).toBe(true);
      expect(script).toContain('# Provides:          paene-autostart\n');
      expect(script).toContain('PAENE="/usr/local/bin/paene"\n');
      expect(fs.statSync(init.file).mode & 0o777).toBe(0o755);
      // the script's verbs, with a stand-in paene that prints what it was asked
      const fake = path.join(dest, 'fake-paene');
      fs.writeFileSync(fake, '#!/bin/sh\necho "paene $*"\n', { mode: 0o755 });
      installBootFile({ system: 'sysv', command: [fake], dest });
      const run = (verb: string) => spawnSync('sh', [init.file, verb], { encoding: 'utf8' });
      expect(run('start').stdout).toContain('paene autostart\n');
      expect(run('stop').stdout).toContain('paene autostart stop\n');
      expect(run('status').stdout).toBe('paene list\n');
      expect(run('bogus').status).toBe(3);
      // again: replaced in place
      installBootFile({ system: 'systemd', command: ['/usr/bin/paene'], dest });
      expect(fs.readFileSync(unit.file, 'utf8')).toContain('ExecStart=/usr/bin/paene autostart\n');
      expect(fs.readdirSync(dest).sort()).toEqual(['fake-paene', 'paene-autostart', 'paene-autostart.service']);
    } finally {
      fs.rmSync(dest, { recursive: true, force: true });
    }
  });

  it('refuses a missing directory and a command that would need quoting', () => {
    expect(() => installBootFile({ system: 'sysv', command: ['/usr/bin/paene'], dest: '/nonexistent/dir' })).toThrow(/no directory/);
    expect(() => installBootFile({ system: 'sysv', command: ['/my paene/paene'], dest: os.tmpdir() })).toThrow(/quoted/);
  });
});
