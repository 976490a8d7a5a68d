// Choosing a state root's network names and its private subnet so that they
// collide with nothing already on the host. Pure: the registry of other
// roots' claims (src/net/registry.ts) and the host's routes and addresses
// (src/net/hostnets.ts) are read by adapters and handed in here.
//
// A root's private network is a numbered set of names: bridge `paene<N>`,
// nft tables `paene` (N = 0) or `paene<N>`, host-side veths `pn<xid>`
// (N = 0) or `p<N>n<xid>`. The veth prefixes never match each other's
// wildcard (`pn*`, `p1n*`, `p12n*`), so one root's "a port I do not know
// gets nothing" rule never drops another root's frames. The subnet is the
// first candidate (`10.88.0.0/16` upwards) that no other root claims and no
// route or address of the host overlaps.

export interface NetNames {
  bridge: string;
  table: string;
  portPrefix: string;
}

/** The names of set N: set 0 keeps the names paene always had (paene0, table paene, pnXID). */
export function netNamesOf(n: number): NetNames {
  if (!Number.isInteger(n) || n < 0 || n > 9999) throw new RangeError(`network name set ${n} out of range`);
  return n === 0
    ? { bridge: 'paene0', table: 'paene', portPrefix: 'pn' }
    : { bridge: `paene${n}`, table: `paene${n}`, portPrefix: `p${n}n` };
}

/** The prefixes netNamesOf hands out: p, some digits, n. */
export const PORT_PREFIX_RE = /^p\d{0,4}n$/;
/** Any root's host-side veth name. */
export const ANY_PORT_RE = /^p\d{0,4}n\d+$/;

/** The lowest set whose three names are all free (`taken` holds names claimed by other roots or present on the host). */
export function chooseNetNames(taken: ReadonlySet<string>, max = 1000): { index: number; names: NetNames } | undefined {
  for (let i = 0; i < max; i++) {
    const names = netNamesOf(i);
    if (!taken.has(names.bridge) && !taken.has(`table ${names.table}`) && !taken.has(`prefix ${names.portPrefix}`))
      return { index: i, names };
  }
  return undefined;
}

// ---------------------------------------------------------------- IPv4 ranges

export interface Range4 {
  first: number;
  last: number;
}

/** 'A.B.C.D/N' (or a bare address, /32) as a range; undefined for anything else. */
export function range4(cidr: string): Range4 | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(cidr.trim());
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  const prefix = m[5] === undefined ? 32 : Number(m[5]);
  if (prefix > 32) return undefined;
  const addr = parts.reduce((n, p) => n * 256 + p, 0);
  const size = 2 ** (32 - prefix);
  const first = addr - (addr % size);
  return { first, last: first + size - 1 };
}

export function overlaps(a: string, b: string): boolean {
  const x = range4(a);
  const y = range4(b);
  return x !== undefined && y !== undefined && x.first <= y.last && y.first <= x.last;
}

/** A network the host already uses: a route's destination or an interface address's network. */
export interface HostNet {
  cidr: string;
  /** how the message names it: "route 10.88.0.0/16 dev cni-podman0", "address 10.88.0.1/16 on cni-podman0" */
  what: string;
  /** the interface it is on (a root's own bridge does not count against its own subnet) */
  dev?: string;
}

/** The first of the host's networks that `cidr` overlaps, other than those on the devices in `own`. */
export function hostOverlap(cidr: string, host: readonly HostNet[], own: ReadonlySet<string> = new Set()): HostNet | undefined {
  return host.find((h) => !(h.dev !== undefined && own.has(h.dev)) && overlaps(cidr, h.cidr));
}

/** The subnets tried for a root's private network, in order: 10.88.0.0/16 (paene's default) to 10.255.0.0/16, then 172.16-31. */
export function subnetCandidates(): string[] {
  const out: string[] = [];
  for (let b = 88; b <= 255; b++) out.push(`10.${b}.0.0/16`);
  for (let b = 16; b <= 31; b++) out.push(`172.${b}.0.0/16`);
  return out;
}

export interface SubnetChoice {
  cidr: string;
  /** candidates passed over, with why: "10.88.0.0/16 (route 10.88.0.0/16 dev cni-podman0)" */
  skipped: string[];
}

/**
 * The first candidate that overlaps neither another root's subnet (`claimed`,
 * each with its owner's words) nor a network of the host; undefined when
 * every one does.
 */
export function chooseSubnet(
  candidates: readonly string[],
  claimed: ReadonlyMap<string, string>,
  host: readonly HostNet[],
  own: ReadonlySet<string> = new Set(),
): SubnetChoice | undefined {
  const skipped: string[] = [];
  for (const c of candidates) {
    const taken = [...claimed].find(([cidr]) => overlaps(c, cidr));
    if (taken) {
      skipped.push(`${c} (${taken[0]} of ${taken[1]})`);
      continue;
    }
    const h = hostOverlap(c, host, own);
    if (h) {
      skipped.push(`${c} (${h.what})`);
      continue;
    }
    return { cidr: c, skipped };
  }
  return undefined;
}

/** Why a subnet given explicitly cannot be used, or undefined when it can. */
export function subnetRefusal(
  cidr: string,
  claimed: ReadonlyMap<string, string>,
  host: readonly HostNet[],
  own: ReadonlySet<string> = new Set(),
): string | undefined {
  const taken = [...claimed].find(([c]) => overlaps(cidr, c));
  if (taken) return `subnet ${cidr} overlaps ${taken[0]}, the private subnet of ${taken[1]}`;
  const h = hostOverlap(cidr, host, own);
  if (h) return `subnet ${cidr} overlaps the host's ${h.what}`;
  return undefined;
}
