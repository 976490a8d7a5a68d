// Capability sets on the real kernel: init and exec hold exactly the
// profile's mask (secure, strict, a --cap-add/--cap-drop variant), the
// privileged profile holds everything, user namespaces are refused, and the
// SET_UTSNAME ccap opens /proc/sys/kernel/hostname for the context only.

import fs from 'node:fs';
import os from 'node:os';
import { expect, it } from 'vitest';
import { CAP_LAST_CAP, type CapSpec, capMask, parseProcStatusCaps, CAP_SET_NAMES } from '../../src/model/caps.js';
import { describeReal } from '../helpers.js';
import { useRuntime } from '../fixture.js';

const VARIANTS: Record<string, CapSpec> = {
  'cap-secure': { profile: 'secure', add: [], drop: [] },
  'cap-strict': { profile: 'strict', add: [], drop: [] },
  'cap-variant': { profile: 'secure', add: ['NET_RAW', 'SYS_NICE'], drop: ['SYS_PTRACE', 'KILL'] },
};
const PRIV: CapSpec = { profile: 'privileged', add: [], drop: [] };

describeReal('capability sets of context processes', () => {
  const hostHostname = os.hostname();

  const fx = useRuntime('caps', async () => {
    for (const [name, caps] of Object.entries(VARIANTS)) await fx.rt.create({ name, image: 'base', caps });
    await fx.rt.create({ name: 'cap-uts', image: 'base', ccaps: ['SET_UTSNAME'], hostname: 'uts-before' });
    for (const n of fx.rt.store.names()) await fx.rt.start(n);
    await fx.rt.create({ name: 'cap-priv', image: 'base', caps: PRIV });
  });

  async function sh(name: string, script: string, user?: { uid: number; gid: number }) {
    return fx.rt.execCapture(name, ['/bin/sh', '-c', script], { timeoutMs: 30_000, user });
  }

  const full = (1n << BigInt(CAP_LAST_CAP + 1)) - 1n;
  const hostBnd = parseProcStatusCaps(fs.readFileSync('/proc/self/status', 'utf8')).CapBnd;

  // The host's own root may lack some capabilities (this VM has no SYS_RESOURCE in
  // its bounding set): the helper intersects the mask with what it holds.
  it('privileged: starts and holds every capability the host root has, without seccomp', async () => {
    await fx.rt.start('cap-priv');
    const sets = parseProcStatusCaps(fs.readFileSync(`/proc/${fx.rt.status('cap-priv').pid}/status`, 'utf8'));
    for (const k of ['CapEff', 'CapPrm', 'CapBnd'] as const) expect(sets[k].toString(16)).toBe((full & hostBnd).toString(16));
    const r = await sh('cap-priv', 'grep ^Seccomp: /proc/self/status');
    expect(r.stdout).toMatch(/Seccomp:\s+0/);
  });

  for (const [name, spec] of Object.entries(VARIANTS)) {
    it(`${name}: init (from the host and from inside) and a fresh exec hold exactly the mask in all five sets`, async () => {
      const want = capMask(spec);
      const fromHost = parseProcStatusCaps(fs.readFileSync(`/proc/${fx.rt.status(name).pid}/status`, 'utf8'));
      const inside = await sh(name, 'cat /proc/1/status; echo ===; cat /proc/self/status');
      expect(inside.code).toBe(0);
      const [initText, execText] = inside.stdout.split('===\n') as [string, string];
      for (const sets of [fromHost, parseProcStatusCaps(initText), parseProcStatusCaps(execText)]) {
        for (const k of CAP_SET_NAMES) {
          expect(sets[k].toString(16), `${name} ${k}`).toBe(want.toString(16));
        }
      }
    });
  }

  it('secure and strict: seccomp is on and user-namespace creation fails with EPERM', async () => {
    for (const name of ['cap-secure', 'cap-strict']) {
      const r = await sh(name, 'grep ^Seccomp: /proc/self/status; busybox unshare -U -r true; echo rc=$?');
      expect(r.stdout).toMatch(/Seccomp:\s+2/);
      expect(r.stderr).toMatch(/Operation not permitted/);
      expect(r.stdout).toMatch(/rc=[1-9]/);
      const asUser = await sh(name, 'busybox unshare -U true; echo rc=$?', { uid: 1000, gid: 1000 });
      expect(asUser.stderr).toMatch(/Operation not permitted/);
    }
  });

  it('strict: no ptrace, chroot or file capabilities for guest root', async () => {
    const r = await sh(
      'cap-strict',
      'mkdir -p /tmp/j; busybox chroot /tmp/j /x 2>&1; echo; setcap cap_sys_admin+ep /bin/true 2>&1 || busybox true',
    );
    expect(r.stdout).toMatch(/Operation not permitted/);
  });

  it('the --cap-add/--cap-drop variant: NET_RAW and SYS_NICE work, KILL of another user is refused', async () => {
    await sh('cap-variant', 'sleep 30 >/dev/null 2>&1 &', { uid: 1000, gid: 1000 });
    const r = await sh(
      'cap-variant',
      'nice -n -5 true && echo nice-ok; busybox ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 && echo ping-ok; ' +
        'sleep 30 & p=$!; kill -0 $p && echo kill-own-ok; kill $p; ' +
        'for d in /proc/[0-9]*; do [ "$(stat -c %u $d)" = 1000 ] && q=${d#/proc/}; done; echo other=$q; kill -0 $q && echo kill-other-ok',
    );
    expect(r.stdout).toMatch(/nice-ok/);
    expect(r.stdout).toMatch(/ping-ok/);
    expect(r.stdout).toMatch(/kill-own-ok/);
    expect(r.stdout).toMatch(/other=\d+/); // the other user's sleep runs
    expect(r.stdout).not.toMatch(/kill-other-ok/); // KILL dropped: root cannot signal uid 1000
    expect(r.stderr).toMatch(/not permitted/i);
  });

  it('SET_UTSNAME: guest root writes its hostname through /proc; without the ccap EROFS; the host name never changes', async () => {
    const w = await sh('cap-uts', 'echo uts-after > /proc/sys/kernel/hostname && hostname');
    expect(w.stdout.trim()).toBe('uts-after');
    expect(os.hostname()).toBe(hostHostname);
    const other = await sh('cap-secure', 'echo nope > /proc/sys/kernel/hostname');
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/Read-only file system/);
    // sethostname(2) still needs SYS_ADMIN, even with the ccap
    const h = await sh('cap-uts', 'busybox hostname nope');
    expect(h.code).not.toBe(0);
    expect(os.hostname()).toBe(hostHostname);
  });

  it('paene hostname from the host: setSysctls changes the context only', async () => {
    fx.rt.setSysctls('cap-secure', { 'kernel.hostname': 'set-from-host' });
    const r = await sh('cap-secure', 'hostname');
    expect(r.stdout.trim()).toBe('set-from-host');
    expect(os.hostname()).toBe(hostHostname);
  });
});
