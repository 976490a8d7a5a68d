// DNS inside a context that reaches the world: the /etc/resolv.conf it gets,
// made from the host's (or from the nameservers given with `net settings
// --dns` or `create --dns`) and bound read-only over the guest's at start.
//
// A context's 127.0.0.0/8 is its own (its 127.0.0.1 is its own first
// address), so the host's loopback resolvers (systemd-resolved's
// 127.0.0.53, a local dnsmasq) are not reachable from inside: they are
// dropped, and when the host names only those, systemd-resolved's list of
// upstreams (/run/systemd/resolve/resolv.conf) is used instead. `search`
// and `options` are kept. The host's files are read as untrusted text: only
// addresses, domain names and option words of a safe shape are written out.

import fs from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { MAX_NAMESERVERS, canonicalIp, isLoopbackResolver } from './model.js';

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** glibc read, before 2.26, at most 6 search domains. */
const MAX_SEARCH = 6;

/** The host files read, in order: the first that names a usable nameserver wins. */
export const HOST_RESOLV_FILES = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf'] as const;

const DOMAIN_RE = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
const OPTION_RE = /^[A-Za-z0-9_-]{1,32}(?::\d{1,5})?$/;

/** The nameservers, search domains and options of a resolv.conf text; anything else (and anything malformed) is left out. */
export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.slice(0, 65536).split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...words] = line.split(/[ \t]+/);
    if (key === 'nameserver' && words[0] !== undefined) {
      const ip = words[0].split('%')[0] as string; // a scoped fe80::1%eth0 names the host's link: not the guest's
      if ((isIPv4(ip) || isIPv6(ip)) && !words[0].includes('%')) out.nameservers.push(canonicalIp(ip));
    } else if (key === 'search' || key === 'domain') {
      out.search = words.filter((w) => DOMAIN_RE.test(w)).slice(0, MAX_SEARCH); // the last one wins, as in glibc
    } else if (key === 'options') {
      for (const w of words) if (OPTION_RE.test(w) && !out.options.includes(w)) out.options.push(w);
    }
  }
  return out;
}

/**
 * What a context's resolv.conf holds: the nameservers given (the context's,
 * else the root's), else the first host file's that are not loopback; the
 * search and options of the host's first file. `why` when there is none.
 */
export function guestResolv(host: readonly ResolvConf[], given?: readonly string[]): { conf: ResolvConf } | { why: string } {
  const first = host[0] ?? { nameservers: [], search: [], options: [] };
  if (given !== undefined && given.length > 0) return { conf: { ...first, nameservers: [...given] } };
  for (const h of host) {
    const usable = h.nameservers.filter((ip) => !isLoopbackResolver(ip));
    if (usable.length > 0) return { conf: { ...first, nameservers: usable.slice(0, MAX_NAMESERVERS) } };
  }
  const named = [...new Set(host.flatMap((h) => h.nameservers))];
  return {
    why:
      named.length > 0
        ? `the host's resolvers (${named.join(', ')}) are on its loopback, which inside a context is the context's own`
        : `the host names no nameserver (${HOST_RESOLV_FILES.join(', ')})`,
  };
}

/** The file's text. */
export function formatResolvConf(c: ResolvConf): string {
  const lines = ['# written by paene at start (docs/network.md, DNS); paene net settings --dns or create --dns change it'];
  if (c.search.length > 0) lines.push(`search ${c.search.join(' ')}`);
  for (const ip of c.nameservers) lines.push(`nameserver ${ip}`);
  if (c.options.length > 0) lines.push(`options ${c.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** The host's resolv.conf files that exist, parsed (a missing or unreadable one is skipped). */
export function readHostResolvConfs(files: readonly string[] = HOST_RESOLV_FILES): ResolvConf[] {
  const out: ResolvConf[] = [];
  for (const f of files) {
    try {
      const fd = fs.openSync(f, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        if (!fs.fstatSync(fd).isFile()) continue;
        const buf = Buffer.alloc(65536);
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        out.push(parseResolvConf(buf.subarray(0, n).toString('utf8')));
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      /* absent or unreadable: the next */
    }
  }
  return out;
}
