// The split root on the real kernel: every escape attempt of the suite as
// guest root of a secure context (blocked, host unchanged), and every admin
// operation guest root must keep (works). Same code as `paene check escape`.

import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { summarize, type AttemptResult } from '../../src/check/escape-judge.js';
import {
  ADMIN_OPERATIONS,
  ESCAPE_ATTEMPTS,
  installProbe,
  makeSentinel,
  runAdminOperation,
  runEscapeAttempt,
  type SuiteEnv,
} from '../../src/check/escape.js';
import { openImageStore } from '../../src/runtime/open.js';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';

describeReal('split root: escape suite and admin suite in a secure context', () => {
  let env: SuiteEnv;
  const results: AttemptResult[] = [];

  const fx = useRuntime('escape', async () => {
    await fx.rt.create({ name: 'esc-guest', image: 'base' });
    await fx.rt.create({ name: 'esc-peer', image: 'base' });
    await fx.rt.start('esc-guest');
    await fx.rt.start('esc-peer');
    await installProbe(fx.rt, 'esc-guest');
    env = {
      rt: fx.rt,
      name: 'esc-guest',
      otherInitPid: fx.rt.status('esc-peer').pid,
      hostOnlyPath: makeSentinel(fx.root),
      imageRootfs: openImageStore(fx.root).rootfsOf('base'),
    };
  });

  it('runs in a secure context', () => {
    expect(fx.rt.config('esc-guest').caps.profile).toBe('secure');
  });

  it.each(ESCAPE_ATTEMPTS.map((a) => [a.id, a] as const))('escape attempt %s is blocked and leaves the host unchanged', async (_id, a) => {
    const r = await runEscapeAttempt(env, a);
    results.push(r);
    expect(r.verdict, `${r.attempt}: ${r.observed}`).not.toBe('ESCAPED');
    expect(r.verdict, `${r.attempt}: ${r.observed}`).not.toBe('inconclusive');
    expect(['blocked', 'not provable here']).toContain(r.verdict);
    expect(r.hostChanged ?? false, r.host).toBe(false);
  });

  it('proves every attempt on this kernel except the features it lacks (kcore, sysrq)', () => {
    const unprovable = results.filter((r) => r.verdict === 'not provable here').map((r) => r.id);
    // a host with no block device at all (a VM on a 9p root) has none to try opening
    const noBlockDevices = fs.readdirSync('/sys/dev/block').length === 0;
    const allowed = ['proc-kcore', 'sysrq-trigger', ...(noBlockDevices ? ['open-host-blockdev'] : [])];
    for (const id of unprovable) expect(allowed, `${id} is not provable here`).toContain(id);
    // modules are judged by errno: this kernel has no module support, so only EPERM (caps/seccomp) counts
    const mod = results.find((r) => r.id === 'modules');
    expect(mod?.observed).toMatch(/^EPERM init_module; EPERM finit_module/);
  });

  it.each(ADMIN_OPERATIONS.map((o) => [o.id, o] as const))('admin operation %s works for guest root', async (_id, op) => {
    const r = await runAdminOperation(env, op);
    results.push(r);
    expect(r.verdict, `${r.attempt}: ${r.observed}`).toBe('works');
  });

  it('sums up: attempts tried, none escaped, no admin operation failed', () => {
    const s = summarize(results);
    expect(s.attempts).toBe(ESCAPE_ATTEMPTS.length);
    expect(s.escaped).toBe(0);
    expect(s.inconclusive).toBe(0);
    expect(s.adminFailed).toBe(0);
    expect(s.hostChanged).toBe(0);
    fs.writeFileSync(path.join(fx.root, 'summary.json'), JSON.stringify(s));
  });
});
