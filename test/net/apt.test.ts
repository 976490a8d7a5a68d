// A Debian 12 guest's apt in a default context (issue 25), against a mirror in
// a test-made world (src/check/world.ts): U serves a flat apt repository the
// test builds (two packages, paene-hello depends on paene-lib) over HTTP at
// 203.0.113.10, named deb.paene.test by the world's DNS responder. The root
// gets only `net settings --dns 203.0.113.53`: egress is a new root's default.
// A busybox guest's wget and nslookup reach the same server by name. Nothing
// here touches the machine's interfaces, and no packet leaves it.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BEYOND, RESOLVER, World } from '../../src/check/world.js';
import { openImageStore } from '../../src/runtime/open.js';
import { describeReal } from '../helpers.js';

const GUEST_TAR = '/var/cache/paene-test/deb12-sysvinit.tar';
const MIRROR = 'deb.paene.test';

const hashes = (b: Buffer) => ({ md5: createHash('md5').update(b).digest('hex'), sha256: createHash('sha256').update(b).digest('hex') });

/**
 * Builds a flat repository in `dir`: two .deb (dpkg-deb, which every Debian has), and the indexes written
 * here as apt-ftparchive and dpkg-scanpackages would (neither is on a new machine): Packages, its .gz,
 * and a Release with their sizes and hashes.
 */
function buildRepo(dir: string): void {
  const pkgs = [
    { name: 'paene-lib', file: 'usr/lib/paene-lib/lib.txt', body: 'paene-lib 1.0\n', depends: '' },
    { name: 'paene-hello', file: 'usr/share/paene-hello/hello.txt', body: 'hello from the mirror\n', depends: 'paene-lib (>= 1.0)' },
  ];
  const stanzas: string[] = [];
  for (const p of pkgs) {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), `paene-test-deb-${p.name}-`));
    const deb = `${p.name}_1.0_all.deb`;
    const control = [
      `Package: ${p.name}`,
      'Version: 1.0',
      'Architecture: all',
      'Maintainer: paene tests <paene@paene.test>',
      ...(p.depends ? [`Depends: ${p.depends}`] : []),
      `Description: ${p.name}, a package of the test's mirror`,
    ];
    try {
      fs.mkdirSync(path.join(src, 'DEBIAN'));
      fs.mkdirSync(path.join(src, path.dirname(p.file)), { recursive: true });
      fs.writeFileSync(path.join(src, p.file), p.body);
      fs.writeFileSync(path.join(src, 'DEBIAN', 'control'), `${control.join('\n')}\n`);
      const r = spawnSync('dpkg-deb', ['--root-owner-group', '--build', src, path.join(dir, deb)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`dpkg-deb --build ${p.name}: ${r.stderr}`);
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
    }
    const b = fs.readFileSync(path.join(dir, deb));
    const h = hashes(b);
    stanzas.push([...control, `Filename: ./${deb}`, `Size: ${b.length}`, `MD5sum: ${h.md5}`, `SHA256: ${h.sha256}`].join('\n'));
  }
  const packages = Buffer.from(`${stanzas.join('\n\n')}\n`);
  const indexes = [
    { f: 'Packages', b: packages },
    { f: 'Packages.gz', b: zlib.gzipSync(packages) },
  ];
  for (const { f, b } of indexes) fs.writeFileSync(path.join(dir, f), b);
  const sums = (algo: 'md5' | 'sha256') => indexes.map(({ f, b }) => ` ${hashes(b)[algo]} ${b.length} ${f}`);
  const release = [
    'Origin: paene-test',
    'Label: paene-test',
    'Suite: stable',
    'Codename: paene',
    `Date: ${new Date().toUTCString()}`,
    'MD5Sum:',
    ...sums('md5'),
    'SHA256:',
    ...sums('sha256'),
  ];
  fs.writeFileSync(path.join(dir, 'Release'), `${release.join('\n')}\n`);
}

describeReal("a Debian guest's apt in a default context, against a mirror in a test-made world", () => {
  let w: World | undefined;
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-mirror-'));
  const world = () => w as World;
  const must = (args: string[]) => world().must(args);
  const inGuest = (name: string, cmd: string) => world().paene(['exec', name, '--', '/bin/sh', '-c', cmd]);

  beforeAll(async () => {
    if (!fs.existsSync(GUEST_TAR)) {
      const r = spawnSync('bash', ['scripts/debian-guest.sh', GUEST_TAR], { stdio: 'inherit', timeout: 900_000 });
      if (r.status !== 0) throw new Error('scripts/debian-guest.sh could not make the Debian guest');
    }
    buildRepo(repo);
    w = World.make('apt');
    world().background(world().u, ['busybox', 'httpd', '-f', '-p', `${BEYOND}:80`, '-h', repo]);
    await world().serveNames({ [MIRROR]: BEYOND });
    await openImageStore(world().root).importTar(fs.createReadStream(GUEST_TAR), 'deb12');
    must(['net', 'settings', '--dns', RESOLVER]);
  }, 1_000_000);

  afterAll(async () => {
    try {
      const left = w ? await w.close() : [];
      expect(left).toEqual([]);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  }, 120_000);

  /** points apt at the mirror only, then update and install, timed; the package and its dependency are installed */
  const installFromMirror = (name: string) => {
    const sources = inGuest(
      name,
      `rm -f /etc/apt/sources.list.d/* && echo 'deb [trusted=yes] http://${MIRROR}/ ./' > /etc/apt/sources.list`,
    );
    expect(sources.code, sources.out).toBe(0);
    let t0 = Date.now();
    const update = inGuest(name, 'apt-get update');
    const updateMs = Date.now() - t0;
    expect(update.code, update.out).toBe(0);
    expect(update.out).toMatch(new RegExp(`Get:\\d+ http://${MIRROR.replaceAll('.', '\\.')} \\./ Packages`));
    expect(update.out).not.toMatch(/debian\.org/); // the image's own source is gone: nothing else was asked
    expect(update.out).not.toMatch(/unsandboxed/); // apt dropped to its _apt user for the download
    t0 = Date.now();
    const install = inGuest(name, 'DEBIAN_FRONTEND=noninteractive apt-get install -y paene-hello');
    const installMs = Date.now() - t0;
    expect(install.code, install.out).toBe(0);
    console.log(`${name}: apt-get update ${updateMs} ms, apt-get install -y paene-hello ${installMs} ms`);
    expect(inGuest(name, 'cat /usr/share/paene-hello/hello.txt /usr/lib/paene-lib/lib.txt').out).toBe(
      'hello from the mirror\npaene-lib 1.0',
    );
    for (const p of ['paene-hello', 'paene-lib']) expect(inGuest(name, `dpkg -s ${p}`).out).toMatch(/^Status: install ok installed$/m);
    // a name the mirror does not have: apt's own refusal, not a network error
    const absent = inGuest(name, 'apt-get install -y paene-absent');
    expect(absent.code).not.toBe(0);
    expect(absent.out).toMatch(/Unable to locate package paene-absent/);
  };

  it('apt-get update and install from the mirror in a default (shared, egress) context', () => {
    must(['create', 'deb', '--image', 'deb12']);
    expect(JSON.parse(must(['net', 'settings', '--json']))).toMatchObject({ egressAuto: true });
    must(['start', 'deb']);
    expect(inGuest('deb', 'cat /etc/resolv.conf').out).toContain(`nameserver ${RESOLVER}`);
    installFromMirror('deb');
    // egress closed live: nothing of the mirror is reached, the resolver beyond the host neither (apt says so, and
    // exits 0 all the same: a failed index is a warning to apt-get update)
    must(['net', 'egress', 'deb', 'none']);
    const t0 = Date.now();
    const closed = inGuest('deb', 'apt-get update');
    console.log(`deb, egress none: apt-get update exit ${closed.code} in ${Date.now() - t0} ms: ${closed.out.replaceAll('\n', ' | ')}`);
    expect(closed.out).not.toMatch(/^(Get|Hit):/m);
    expect(closed.out).toMatch(/W: Failed to fetch http:\/\/deb\.paene\.test\/.*(Temporary failure resolving|Connection refused)/);
    must(['net', 'egress', 'deb', 'nat']);
    expect(inGuest('deb', 'apt-get update').out).toMatch(/^(Get|Hit):\d+ http:\/\/deb\.paene\.test \.\/ Release/m); // apt exits 0 either way
    must(['destroy', '--force', 'deb']);
  }, 300_000);

  it('the same from a --net private context', () => {
    must(['create', 'debp', '--image', 'deb12', '--net', 'private']);
    must(['start', 'debp']);
    installFromMirror('debp');
    must(['destroy', '--force', 'debp']);
  }, 300_000);

  it("a busybox guest's wget and nslookup reach the mirror by name", () => {
    must(['create', 'bb']);
    must(['start', 'bb']);
    const lookup = inGuest('bb', `busybox nslookup ${MIRROR}`);
    expect(lookup.out, lookup.out).toContain(BEYOND);
    // no -T: Debian's busybox 1.35 is built without FEATURE_WGET_TIMEOUT, and its -T then writes through NULL (SIGSEGV)
    const get = inGuest('bb', `wget -q -O - http://${MIRROR}/Release`);
    console.log(`busybox wget: ${get.code} ${get.out.slice(0, 80)}`);
    expect(get.code, get.out).toBe(0);
    expect(get.out).toMatch(/^Origin: paene-test$/m);
    must(['destroy', '--force', 'bb']);
  }, 120_000);
});
