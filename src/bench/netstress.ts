// The several-roots stress of issue 25: R state roots x N contexts of each
// model (shared, private) created and started at once, all of it in a world
// the run makes (src/check/world.ts: paene runs in a namespace H, a second
// one U plays the outside). Counted: duplicate addresses, subnets and names
// across the roots; every context's server and every published port
// answering, before and after one root is destroyed; paene links, nft
// tables, registry claims and namespaces left at the end. Nothing touches the
// machine's own interfaces, routes or firewall.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REGISTRY_BASE } from '../net/registry.js';
import { portRe } from '../net/bridgeplan.js';
import { UPLINK_HOST, World } from '../check/world.js';

export interface NetStressOptions {
  roots: number;
  perRoot: number;
  /**
   * The world's host without IPv6 (a diagnosis, not the default): a shared
   * context's policy refuses the host's addresses one by one, at most 16 per
   * family; private veths with link-local addresses used to fill it.
   */
  noIpv6?: boolean;
  log?: (s: string) => void;
}

export interface NetStressResult {
  benchmark: 'net-stress';
  roots: number;
  perRoot: number;
  noIpv6: boolean;
  contexts: number;
  /** seconds: every root's creates at once; every root's `start --all` at once; the first root's destroy */
  seconds: { create: number; start: number; destroyOne: number; destroyRest: number };
  /** how many values were handed out more than once across the roots */
  duplicates: {
    addresses: number;
    subnets: number;
    egressPools: number;
    bridges: number;
    tables: number;
    vethPrefixes: number;
    vethsMissing: number;
  };
  /** servers answering by name: every context on its address from H, every published port from U */
  answered: { before: [number, number]; published: [number, number]; afterDestroy: [number, number]; publishedAfter: [number, number] };
  /** each context that did not answer by name before the destroy: root, name, address, and what it showed (its state, its processes) */
  silent: string[];
  /** the destroyed root's bridge and table gone while the others' stay */
  destroyedRootLeft: string[];
  /** paene links and tables in H, registry claims of the run's roots, namespaces of the run */
  leftovers: string[];
  failures: string[];
}

interface Ctx {
  root: number;
  name: string;
  running: boolean;
  address: string;
  hostPort?: number;
}

const SHARED_POOL = '127.203.0.0/16';

export async function runNetStress(o: NetStressOptions): Promise<NetStressResult> {
  const log = o.log ?? (() => undefined);
  const world = World.make('netstress');
  const failures: string[] = [];
  const roots = [world.root, ...Array.from({ length: o.roots - 1 }, () => world.addRoot('netstress'))];
  const timed = async (f: () => Promise<unknown>) => {
    const t0 = Date.now();
    await f();
    return Math.round((Date.now() - t0) / 100) / 10;
  };
  const all = async (f: (root: string, i: number) => Promise<{ code: number | null; out: string }[]>) => {
    const runs = (await Promise.all(roots.map((r, i) => f(r, i)))).flat();
    // what went wrong, without the lines of what went right
    const wrong = (out: string) => out.split('\n').filter((l) => !/^(started|created) context/.test(l));
    for (const r of runs) if (r.code !== 0) failures.push(wrong(r.out).slice(-6).join(' | '));
  };
  const seconds = { create: 0, start: 0, destroyOne: 0, destroyRest: 0 };
  let duplicates: NetStressResult['duplicates'] = {
    addresses: 0,
    subnets: 0,
    egressPools: 0,
    bridges: 0,
    tables: 0,
    vethPrefixes: 0,
    vethsMissing: 0,
  };
  let answered: NetStressResult['answered'] = { before: [0, 0], published: [0, 0], afterDestroy: [0, 0], publishedAfter: [0, 0] };
  const destroyedRootLeft: string[] = [];
  const silent: string[] = [];
  const leftovers: string[] = [];
  // each serves its hostname (its name) as /id
  const cmd = ['--cmd', "sh -c 'mkdir -p /tmp/w && hostname > /tmp/w/id && exec httpd -f -p 80 -h /tmp/w'"];
  try {
    if (o.noIpv6) for (const k of ['all', 'default']) world.run(world.h, ['sysctl', '-q', '-w', `net.ipv6.conf.${k}.disable_ipv6=1`]);
    for (const r of roots) world.must(['net', 'settings', '--shared-pool', SHARED_POOL], undefined, r);
    log(`creating ${o.roots} x ${o.perRoot} contexts of each model ...`);
    seconds.create = await timed(() =>
      all(async (r, i) => {
        const out = [await world.paeneAsync(['create', 's%d', '--count', String(o.perRoot), ...cmd], 600_000, r)];
        for (let j = 1; j <= o.perRoot; j++)
          out.push(await world.paeneAsync(['create', `p${j}`, '--net', 'private', '--publish', `${portOf(i, j)}:80`, ...cmd], 60_000, r));
        return out;
      }),
    );
    log(`starting them, every root at once ...`);
    seconds.start = await timed(() => all(async (r) => [await world.paeneAsync(['start', '--all'], 900_000, r)]));

    const ctxs = (): Ctx[] =>
      roots.flatMap((r, i) =>
        (JSON.parse(world.must(['net', 'ls', '--json'], undefined, r)) as { name: string; state: string; addresses: string[] }[]).map(
          (c) => ({
            root: i,
            name: c.name,
            running: c.state === 'running',
            address: c.addresses[0] ?? '',
            ...(c.name.startsWith('p') ? { hostPort: portOf(i, Number(c.name.slice(1))) } : {}),
          }),
        ),
      );
    const before = ctxs();
    const settings = roots.map(
      (r) =>
        JSON.parse(world.must(['net', 'settings', '--json'], undefined, r)) as {
          bridge: { bridge: string; subnet4: string; table: string; portPrefix: string };
          egressPool4?: string;
        },
    );
    const dups = (xs: string[]) => xs.length - new Set(xs).size;
    const hostLinks = links(world);
    const vethsMissing = settings.reduce(
      (n, s) => n + Math.max(0, o.perRoot - hostLinks.filter((l) => portRe(s.bridge).test(l.ifname)).length),
      0,
    );
    duplicates = {
      addresses: dups(before.map((c) => c.address)),
      subnets: dups(settings.map((s) => s.bridge.subnet4)),
      egressPools: dups(settings.flatMap((s) => (s.egressPool4 ? [s.egressPool4] : []))),
      bridges: dups(settings.map((s) => s.bridge.bridge)),
      tables: dups(settings.map((s) => s.bridge.table)),
      vethPrefixes: dups(settings.map((s) => s.bridge.portPrefix)),
      vethsMissing,
    };
    log(`duplicates: ${JSON.stringify(duplicates)}; asking every server ...`);
    // one that did not start counts as not answering (its start failed: see failures)
    const silentOf = (cs: Ctx[]): Ctx[] => cs.filter((c) => !c.running || get(world, world.h, c.address, 80) !== c.name);
    const ask = (cs: Ctx[], silentOnes = silentOf(cs)): [number, number] => [cs.length - silentOnes.length, cs.length];
    const askPublished = (cs: Ctx[]): [number, number] => {
      const p = cs.filter((c) => c.hostPort !== undefined);
      return [p.filter((c) => c.running && get(world, world.u, UPLINK_HOST, c.hostPort as number) === c.name).length, p.length];
    };
    const silentBefore = silentOf(before);
    answered.before = ask(before, silentBefore);
    answered.published = askPublished(before);
    for (const c of silentBefore) {
      const r = roots[c.root] as string;
      const st = (JSON.parse(world.must(['ls', '--json'], undefined, r)) as { name: string; state: string; main?: unknown }[]).find(
        (x) => x.name === c.name,
      );
      const ps = await world.paeneAsync(['exec', c.name, '--', 'sh', '-c', 'ps; cat /tmp/w/id; ip -4 addr 2>/dev/null'], 30_000, r);
      silent.push(`root ${c.root} ${c.name} ${c.address}: ${JSON.stringify(st)}; inside: ${ps.out.replaceAll('\n', ' | ')}`);
    }
    if (silent.length > 0) log(`not answering: ${silent.join('; ')}`);

    log('destroying the first root ...');
    seconds.destroyOne = await timed(async () => {
      const r = await world.paeneAsync(['destroy', '--force', '--all'], 600_000, roots[0]);
      if (r.code !== 0) failures.push(r.out);
    });
    const gone = settings[0]?.bridge;
    const nowLinks = links(world).map((l) => l.ifname);
    const tables = world.run(world.h, ['nft', 'list', 'tables']).out;
    if (gone && nowLinks.includes(gone.bridge)) destroyedRootLeft.push(`link ${gone.bridge}`);
    if (gone && new RegExp(`inet ${gone.table}$`, 'm').test(tables)) destroyedRootLeft.push(`nft table ${gone.table}`);
    for (const s of settings.slice(1)) {
      if (!nowLinks.includes(s.bridge.bridge)) failures.push(`another root's bridge ${s.bridge.bridge} went with the first root`);
      if (!new RegExp(`inet ${s.bridge.table}$`, 'm').test(tables))
        failures.push(`another root's table ${s.bridge.table} went with the first root`);
    }
    const rest = before.filter((c) => c.root !== 0);
    answered = { ...answered, afterDestroy: ask(rest), publishedAfter: askPublished(rest) };

    log('destroying the others ...');
    seconds.destroyRest = await timed(() => all(async (r) => [await world.paeneAsync(['destroy', '--force', '--all'], 600_000, r)]));
    leftovers.push(...world.leftovers());
  } finally {
    leftovers.push(...(await world.close()).filter((l) => !leftovers.includes(l)));
    leftovers.push(...registryClaims(roots), ...namespacesOf(world));
    leftovers.push(...roots.filter((r) => fs.existsSync(r)).map((r) => `state root ${r}`));
  }
  return {
    benchmark: 'net-stress',
    roots: o.roots,
    perRoot: o.perRoot,
    noIpv6: o.noIpv6 === true,
    contexts: o.roots * o.perRoot * 2,
    seconds,
    duplicates,
    answered,
    silent,
    destroyedRootLeft,
    leftovers,
    failures,
  };
}

/** A distinct published host port per root and context. */
function portOf(root: number, j: number): number {
  return 30000 + root * 1000 + j;
}

function links(world: World): { ifname: string }[] {
  return JSON.parse(world.run(world.h, ['ip', '-j', 'link', 'show']).out || '[]') as { ifname: string }[];
}

/** GET /id from namespace `ns`: the body's first line, or '' */
function get(world: World, ns: string, host: string, port: number): string {
  for (let i = 0; i < 3; i++) {
    const r = world.run(ns, ['curl', '-s', '--max-time', '3', `http://${host}:${port}/id`], undefined, 15_000);
    if (r.code === 0) return r.out.split('\n')[0] ?? '';
  }
  return '';
}

/** Registry claims whose owner is one of `roots` (they must all be given back). */
function registryClaims(roots: string[]): string[] {
  const out: string[] = [];
  if (!fs.existsSync(REGISTRY_BASE)) return out;
  for (const scope of fs.readdirSync(REGISTRY_BASE))
    for (const kind of safeDir(path.join(REGISTRY_BASE, scope)))
      for (const key of safeDir(path.join(REGISTRY_BASE, scope, kind))) {
        let owner = '';
        try {
          owner = fs.readlinkSync(path.join(REGISTRY_BASE, scope, kind, key));
        } catch {
          continue;
        }
        if (roots.some((r) => owner === r || owner.endsWith(`@${r}`))) out.push(`claim ${scope}/${kind}/${key} -> ${owner}`);
      }
  return out;
}

function safeDir(d: string): string[] {
  try {
    return fs.statSync(d).isDirectory() ? fs.readdirSync(d).filter((n) => !n.startsWith('.')) : [];
  } catch {
    return [];
  }
}

/** The run's namespaces, if still there. */
function namespacesOf(world: World): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  return [world.h, world.u].filter((n) => new RegExp(`^${n}\\b`, 'm').test(list)).map((n) => `netns ${n}`);
}

export function netStressTable(r: NetStressResult): string {
  const pair = ([a, b]: [number, number]) => `${a}/${b}`;
  return [
    `${r.roots} roots x ${r.perRoot} contexts of each model (${r.contexts} in all), in a world of two namespaces${r.noIpv6 ? ' (its host without IPv6)' : ''}`,
    `create ${r.seconds.create} s, start (every root at once) ${r.seconds.start} s, destroy one root ${r.seconds.destroyOne} s, the rest ${r.seconds.destroyRest} s`,
    `duplicates: addresses ${r.duplicates.addresses}, subnets ${r.duplicates.subnets}, egress pools ${r.duplicates.egressPools}, bridges ${r.duplicates.bridges}, tables ${r.duplicates.tables}, veth prefixes ${r.duplicates.vethPrefixes}; veths missing ${r.duplicates.vethsMissing}`,
    `answering: every context ${pair(r.answered.before)}, published ports ${pair(r.answered.published)}; after one root's destroy: the others ${pair(r.answered.afterDestroy)}, their published ports ${pair(r.answered.publishedAfter)}`,
    `the destroyed root's bridge/table left: ${r.destroyedRootLeft.join(', ') || 'none'}`,
    `left at the end: ${r.leftovers.join(', ') || 'nothing'}`,
    `failures: ${r.failures.length ? r.failures.join('\n  ') : 'none'}`,
  ].join('\n');
}
