// The pure side of bind mounts and volumes (src/model/mounts.ts): the
// --mount syntax, the destination and source policy, a config's list, who
// uses a volume; and the --bind flag as the helper parses it back.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/context/config.js';
import { startArgs } from '../../src/kernel/helper.js';
import { MOUNTS_MAX, isWithin, parseMountArg, sourceRefusal, validateMounts, validateTarget, volumeUsers } from '../../src/model/mounts.js';
import { HELPER_REQUEST } from '../../src/proto/helper-request.js';
import { decodeMessage, parseFlagArgs } from '../../src/proto/tokens.js';

describe('--mount SRC:DST[:ro]', () => {
  it('takes a host path or a volume name, rw by default', () => {
    expect(parseMountArg('/srv/data:/data')).toEqual({ source: '/srv/data', target: '/data', readonly: false });
    expect(parseMountArg('/srv/data/:/data/:ro')).toEqual({ source: '/srv/data', target: '/data', readonly: true });
    expect(parseMountArg('db-1:/var/lib/db:rw')).toEqual({ source: 'db-1', target: '/var/lib/db', readonly: false });
    expect(parseMountArg('/etc/app.conf:/etc/app.conf:ro')).toEqual({ source: '/etc/app.conf', target: '/etc/app.conf', readonly: true });
  });
  it('refuses what it cannot read with a sentence', () => {
    const cases: [string, RegExp][] = [
      ['/a', /SOURCE:DESTINATION/],
      ['/a:/b:ro:x', /SOURCE:DESTINATION/],
      ['/a:/b:rx', /'ro' or 'rw'/],
      ['rel/dir:/b', /not an absolute path/],
      [':/b', /mount source is empty/],
      ['Bad_Name:/b', /invalid volume name/],
      ['/a/../etc:/b', /'\.\.' component/],
      ['/a:/b/../../etc', /'\.\.' component/],
      ['/a:b', /not an absolute path/],
      ['/a:/', /the guest's root itself/],
      ['/a://', /the guest's root itself/],
      ['/a:/proc', /guest's \/proc/],
      ['/a:/proc/sys/kernel', /guest's \/proc/],
      ['/a:/sys', /guest's \/sys/],
      ['/a:/dev/shm', /guest's \/dev/],
      ['/a:/tmp/x', /guest's \/tmp/],
      ['/a:/b\nc', /newline/],
    ];
    for (const [arg, why] of cases) expect(() => parseMountArg(arg), arg).toThrow(why);
  });
  it('keeps what only looks like a refused path', () => {
    expect(validateTarget('/procfs')).toBe('/procfs');
    expect(validateTarget('/device')).toBe('/device');
    expect(validateTarget('/a//b/./c/')).toBe('/a/b/c');
  });
});

describe("a config's mounts", () => {
  const base = {
    version: 1,
    name: 'c',
    xid: 2,
    image: 'base',
    hostname: 'c',
    created: '2026-01-01T00:00:00.000Z',
    caps: { profile: 'secure', add: [], drop: [] },
    limits: {},
  };
  it('are checked when the config is read back (a hand edit gets a sentence)', () => {
    const m = [{ source: 'vol', target: '/data', readonly: false }];
    expect(validateConfig({ ...base, mounts: m }, 'config.json').mounts).toEqual(m);
    expect(validateConfig(base, 'config.json').mounts).toBeUndefined();
    expect(() => validateConfig({ ...base, mounts: [{ source: 'vol', target: '/proc' }] }, 'config.json')).toThrow(/'readonly'/);
    expect(() => validateConfig({ ...base, mounts: [{ source: 'vol', target: '/etc/../proc', readonly: true }] }, 'config.json')).toThrow(
      /'\.\.'/,
    );
    expect(() => validateConfig({ ...base, mounts: 'x' }, 'config.json')).toThrow(/must be a list/);
  });
  it('put nothing twice on one destination, and are bounded', () => {
    expect(() =>
      validateMounts(
        [
          { source: 'a', target: '/d', readonly: false },
          { source: 'b', target: '/d/', readonly: true },
        ],
        'x',
      ),
    ).toThrow(/two mounts on '\/d'/);
    const many = Array.from({ length: MOUNTS_MAX + 1 }, (_, i) => ({ source: 'v', target: `/m${i}`, readonly: false }));
    expect(() => validateMounts(many, 'x')).toThrow(new RegExp(`at most ${MOUNTS_MAX}`));
  });
  it('name the contexts that use a volume', () => {
    const configs = [
      { name: 'a', mounts: [{ source: 'v', target: '/x', readonly: false }] },
      { name: 'b' },
      { name: 'c', mounts: [{ source: '/v', target: '/x', readonly: false }] },
      {
        name: 'd',
        mounts: [
          { source: 'w', target: '/x', readonly: false },
          { source: 'v', target: '/y', readonly: true },
        ],
      },
    ];
    expect(volumeUsers('v', configs)).toEqual(['a', 'd']);
    expect(volumeUsers('z', configs)).toEqual([]);
  });
});

describe('the source policy', () => {
  const guarded = [
    { path: '/var/lib/paene', what: 'the paene state root' },
    { path: '/opt/paene', what: "paene's own files" },
  ];
  it("refuses /, /proc, /sys, /dev, paene's paths, and a parent of them", () => {
    expect(sourceRefusal('/', guarded)).toMatch(/root directory/);
    expect(sourceRefusal('/proc', guarded)).toMatch(/\/proc/);
    expect(sourceRefusal('/proc/1/root', guarded)).toMatch(/\/proc/);
    expect(sourceRefusal('/sys/fs/cgroup', guarded)).toMatch(/\/sys/);
    expect(sourceRefusal('/dev/sda', guarded)).toMatch(/\/dev/);
    expect(sourceRefusal('/var/lib/paene', guarded)).toMatch(/inside the paene state root/);
    expect(sourceRefusal('/var/lib/paene/volumes/v/data', guarded)).toMatch(/inside the paene state root/);
    expect(sourceRefusal('/var/lib', guarded)).toMatch(/holds the paene state root/);
    expect(sourceRefusal('/opt/paene/dist/native', guarded)).toMatch(/paene's own files/);
  });
  it('lets the rest through, including names that only start alike', () => {
    for (const p of ['/srv/data', '/var/lib/paene2', '/procs', '/devel', '/opt/paene-data', '/home/u/x.conf'])
      expect(sourceRefusal(p, guarded), p).toBeUndefined();
    expect(isWithin('/a/b', '/a')).toBe(true);
    expect(isWithin('/ab', '/a')).toBe(false);
  });
});

describe('the --bind flag', () => {
  const request = {
    cgroupProcs: [],
    lower: '/l',
    upper: '/u',
    work: '/w',
    rootfs: '/r',
    hostname: 'h',
    sysctls: {},
    masked: [],
    readonly: [],
    writable: [],
    scratch: '/s',
    empty: '/e',
    devices: [],
    capsMask: 0n,
    binds: [
      { source: '/srv/a b', target: '/data', readonly: false, kind: 'dir' as const },
      { source: '/run/paene/resolv.conf', target: '/etc/resolv.conf', readonly: true, kind: 'file' as const },
    ],
  };
  it('carries each bind whole, in order, and the helper parses back what was sent', () => {
    const args = startArgs(request).slice(1);
    const binds = parseFlagArgs(HELPER_REQUEST, args).entries.filter((e) => e[0] === '--bind');
    expect(binds).toEqual([
      ['--bind', '/srv/a b', '/data', 'rw', 'dir'],
      ['--bind', '/run/paene/resolv.conf', '/etc/resolv.conf', 'ro', 'file'],
    ]);
    const r = spawnSync(path.resolve('dist/native/paene-helper'), ['echo-request', ...args]);
    expect(r.status, r.stderr?.toString()).toBe(0);
    expect(decodeMessage(HELPER_REQUEST, r.stdout).filter((e) => e[0] === '--bind')).toEqual(binds);
  });
});
