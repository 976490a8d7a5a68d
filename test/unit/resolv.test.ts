// DNS inside a context (src/net/resolv.ts): the resolv.conf made from the
// host's, the nameservers given with --dns, and hostile host files. The
// kernel side (a guest resolving through it) is test/net/egress.test.ts.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLoopbackResolver, netSpecFrom, parseDnsList, validateNetSettings, defaultNetSettings } from '../../src/net/model.js';
import { formatResolvConf, guestResolv, parseResolvConf, readHostResolvConfs } from '../../src/net/resolv.js';

const STUB = '# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan example.org\n';
const UPSTREAM = 'nameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 192.0.2.54\nnameserver 192.0.2.55\nsearch lan\n';

describe('the host resolv.conf', () => {
  it('is read for nameservers, search and options; comments and anything else left out', () => {
    expect(parseResolvConf(STUB)).toEqual({ nameservers: ['127.0.0.53'], search: ['lan', 'example.org'], options: ['edns0', 'trust-ad'] });
    expect(parseResolvConf('domain a.test\nsearch b.test c.test\n').search).toEqual(['b.test', 'c.test']); // the last wins
    expect(parseResolvConf('nameserver 2001:DB8:0::53 # upstream\n').nameservers).toEqual(['2001:db8::53']);
  });
  it('hostile lines never reach the guest file: only addresses, domain names and option words', () => {
    const evil = [
      'nameserver 192.0.2.1\nnameserver evil.example\nnameserver 1.2.3.4.5',
      'nameserver fe80::1%eth0',
      `search ${'a'.repeat(300)}.test`,
      'search ok.test $(reboot) ../../etc x\u0000y a;b',
      'options ndots:2 rotate\u001b[2J timeout:99999999 attempts:2',
      'nameserver\t192.0.2.9\r',
    ].join('\n');
    const c = parseResolvConf(evil);
    expect(c.nameservers).toEqual(['192.0.2.1', '192.0.2.9']); // a tab and a CRLF line end are fine
    expect(c.search).toEqual(['ok.test', 'a']); // the last search line wins; ';' starts a comment
    expect(c.options).toEqual(['ndots:2', 'attempts:2']);
    const text = formatResolvConf(c);
    expect(text).not.toMatch(/reboot|evil|\u001b|\u0000|%/);
    expect(text.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual([
      'search ok.test a',
      'nameserver 192.0.2.1',
      'nameserver 192.0.2.9',
      'options ndots:2 attempts:2',
    ]);
  });
  it('is read as a bounded regular file: a FIFO or a directory is skipped, a missing one too', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-test-resolv-'));
    try {
      fs.writeFileSync(path.join(dir, 'r'), `${UPSTREAM}${'# x\n'.repeat(40000)}nameserver 192.0.2.99\n`);
      fs.mkdirSync(path.join(dir, 'd'));
      const got = readHostResolvConfs([path.join(dir, 'missing'), path.join(dir, 'd'), path.join(dir, 'r')]);
      expect(got).toHaveLength(1);
      expect(got[0]?.nameservers).toEqual(['192.0.2.53', '2001:db8::53', '192.0.2.54', '192.0.2.55']); // read up to 64 KiB
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a context's resolv.conf", () => {
  it("drops the host's loopback resolvers and takes systemd-resolved's upstreams, keeping search and options", () => {
    const r = guestResolv([parseResolvConf(STUB), parseResolvConf(UPSTREAM)]);
    expect(r).toEqual({
      conf: { nameservers: ['192.0.2.53', '2001:db8::53', '192.0.2.54'], search: ['lan', 'example.org'], options: ['edns0', 'trust-ad'] },
    });
    expect(guestResolv([parseResolvConf('nameserver 127.0.0.53\nnameserver 192.0.2.7\n')])).toMatchObject({
      conf: { nameservers: ['192.0.2.7'] },
    });
  });
  it('takes the nameservers given over the host', () => {
    expect(guestResolv([parseResolvConf(STUB)], ['203.0.113.53'])).toMatchObject({
      conf: { nameservers: ['203.0.113.53'], search: ['lan', 'example.org'] },
    });
    expect(guestResolv([], ['203.0.113.53'])).toMatchObject({ conf: { nameservers: ['203.0.113.53'], search: [] } });
  });
  it('says why when nothing usable is left, instead of a broken file', () => {
    expect(guestResolv([parseResolvConf(STUB)])).toEqual({ why: expect.stringMatching(/127\.0\.0\.53\) are on its loopback/) });
    expect(guestResolv([])).toEqual({ why: expect.stringMatching(/names no nameserver/) });
  });
});

describe('--dns', () => {
  it('takes IP[,IP], canonical, up to 3, never a loopback address', () => {
    expect(parseDnsList(['192.0.2.1,192.0.2.2', '2001:DB8::1'])).toEqual(['192.0.2.1', '192.0.2.2', '2001:db8::1']);
    expect(() => parseDnsList(['127.0.0.53'])).toThrow(/its own \(its 127\.0\.0\.1\), not the host's resolver/);
    expect(() => parseDnsList(['::1'])).toThrow(/loopback/);
    expect(() => parseDnsList(['1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4'])).toThrow(/at most 3/);
    expect(() => parseDnsList(['dns.example'])).toThrow(/invalid IP address/);
    expect(isLoopbackResolver('::ffff:127.0.0.1')).toBe(true);
  });
  it('is for shared and private contexts, and a root setting', () => {
    expect(netSpecFrom({ dns: ['203.0.113.53'] }).dns).toEqual(['203.0.113.53']);
    expect(netSpecFrom({ mode: 'private', dns: ['203.0.113.53'] }).dns).toEqual(['203.0.113.53']);
    expect(netSpecFrom({}).dns).toBeUndefined();
    expect(() => netSpecFrom({ mode: 'none', dns: ['203.0.113.53'] })).toThrow(/--dns is for shared and private/);
    expect(validateNetSettings({ dns: ['203.0.113.53'] }, defaultNetSettings(), 'net.json').dns).toEqual(['203.0.113.53']);
    expect(() => validateNetSettings({ dns: ['127.0.0.53'] }, defaultNetSettings(), 'net.json')).toThrow(/net.json: dns 127.0.0.53/);
  });
});
