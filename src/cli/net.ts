// Network verbs: `paene net ls|add|rm|set|egress|settings` (docs/network.md).

import type { Command } from 'commander';
import { formatPublish } from '../net/bridgeplan.js';
import { NET_MODES, type NetSpec, describeNet, netSpecFrom, validateNetSpec } from '../net/model.js';
import { changeNetSettings } from '../runtime/netsettings.js';
import { runtimeOf } from './common.js';
import { formatTable, printJson } from './format.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The options create and set share: --net, --ip, --publish. */
export function addNetOptions(cmd: Command, withDefault: boolean): Command {
  return cmd
    .option(
      '--net <mode>',
      `network model: ${NET_MODES.join(', ')}${withDefault ? " (default: shared, an address of its own on the host's stack)" : ''}`,
    )
    .option('--ip <addr>', 'an address it owns (repeatable; IPv4 or IPv6; default: one from the pool)', collect, [])
    .option('--publish <hostport:port[/udp]>', 'with --net private: forward a host port to it (repeatable)', collect, [])
    .option(
      '--egress <nat|none>',
      "shared and private: whether it reaches beyond the host (default nat; a shared context from the root's egress pool, the default); live: paene net egress",
    )
    .option(
      '--dns <ip[,ip]>',
      "shared and private: the nameservers of the /etc/resolv.conf it gets at start (default: the root's net settings --dns, else the host's own, loopback ones left out)",
      collect,
      [],
    );
}

export function netSpecOf(o: { net?: string; ip?: string[]; publish?: string[]; egress?: string; dns?: string[] }): NetSpec {
  return netSpecFrom({ mode: o.net, ips: o.ip ?? [], publish: o.publish ?? [], egress: o.egress, dns: o.dns ?? [] });
}

/** One line: mode and addresses, for list and status. */
export function netCell(spec: NetSpec): string {
  if (spec.mode === 'host') return 'host (no wall)';
  if (spec.mode === 'none') return 'none';
  const pub = spec.publish.length ? ` ${spec.publish.map(formatPublish).join(',')}` : '';
  return `${spec.mode} ${spec.addresses.join(',') || '-'}${pub}`;
}

export function registerNetCommands(program: Command): void {
  const net = program
    .command('net')
    .description('Network contexts: what each context owns, live address changes, and the pools')
    .addHelpText(
      'after',
      `
Models (paene create NAME --net MODE):
  shared   the host's stack, no per-packet cost; binds, connects and sends limited to its own
           addresses by cgroup BPF programs; its 127.0.0.1 is its own first address (the default)
  private  a network namespace of its own: a routed veth, NAT out, --publish in
  none     a network namespace with loopback only
  host     the host's stack with no wall: --caps privileged only`,
    );

  net
    .command('ls')
    .description('Every context with its network model, addresses and published ports')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }, cmd: Command) => {
      const rows = runtimeOf(cmd).list();
      if (o.json) {
        printJson(rows.map((s) => ({ name: s.name, state: s.state, ...s.net })));
        return;
      }
      console.log(
        formatTable(rows, [
          { header: 'NAME', get: (s) => s.name },
          { header: 'STATE', get: (s) => s.state },
          { header: 'MODE', get: (s) => s.net.mode + (s.net.mode === 'host' ? ' (no wall)' : '') },
          { header: 'ADDRESSES', get: (s) => s.net.addresses.join(' ') || '-' },
          { header: 'PUBLISH', get: (s) => s.net.publish.map(formatPublish).join(' ') || '-' },
        ]),
      );
    });

  for (const op of ['add', 'rm'] as const) {
    net
      .command(op)
      .description(
        op === 'add'
          ? 'Give a shared context another address (live if it runs: its BPF programs are replaced at once)'
          : 'Take an address from a shared context (live if it runs)',
      )
      .argument('<name>', 'the context')
      .argument('<addr>', 'IPv4 or IPv6 address')
      .option('--json', 'print the resulting network as JSON')
      .action(async (name: string, addr: string, o: { json?: boolean }, cmd: Command) => {
        const c = await runtimeOf(cmd).changeAddress(name, op, addr);
        if (o.json) printJson(c.net);
        else console.log(`'${name}': ${describeNet(c.net)}`);
      });
  }

  addNetOptions(
    net
      .command('set')
      .description("Change a stopped context's network model, addresses or published ports (they apply at start)")
      .argument('<name>', 'the context'),
    false,
  )
    .option('--json', 'print the resulting network as JSON')
    .action(
      async (
        name: string,
        o: { net?: string; ip: string[]; publish: string[]; egress?: string; dns: string[]; json?: boolean },
        cmd: Command,
      ) => {
        const rt = runtimeOf(cmd);
        const cur = rt.config(name).net;
        const mode = o.net ?? cur.mode;
        // Unchanged parts are kept; a new mode starts with a fresh address unless --ip says otherwise.
        const keep = mode === cur.mode;
        const spec = netSpecFrom({
          mode,
          ips: o.ip.length ? o.ip : keep ? cur.addresses : [],
          publish: o.publish.length ? o.publish : keep ? cur.publish.map(formatPublish) : [],
          egress: o.egress ?? (keep ? cur.egress : undefined),
          dns: o.dns.length ? o.dns : keep ? cur.dns : undefined,
        });
        const c = await rt.setNet(name, spec);
        if (o.json) printJson(c.net);
        else console.log(`'${name}': ${describeNet(c.net)}`);
      },
    );

  net
    .command('egress')
    .description('Whether a context reaches beyond the host: nat (through the host, source NAT) or none; live on a running context')
    .argument('<name>', 'the context')
    .argument('<egress>', 'nat or none')
    .option('--json', 'print the resulting network as JSON')
    .action(async (name: string, egress: string, o: { json?: boolean }, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const c = await rt.changeConfig(name, (cur) => ({ ...cur, net: validateNetSpec({ ...cur.net, egress }, 'network') }), {
        after: (next, running) => (running ? rt.network.applyEgress(next) : undefined),
      });
      if (o.json) printJson(c.net);
      else console.log(`'${name}': ${describeNet(c.net)}`);
    });

  net
    .command('settings')
    .description(
      "Show or change this state root's network settings: the shared pool, the private network's gateway link and subnet, the host addresses contexts may reach",
    )
    .option('--shared-pool <cidr>', 'IPv4 pool shared contexts get addresses from (127.0.0.0/8 works with no interface setup)')
    .option('--bridge <name>', "private contexts' gateway link (a bridge device with no ports; default paene0)")
    .option('--subnet <cidr>', 'the private subnet: private contexts get addresses from it')
    .option('--publish-host <addr>', 'a host address (not loopback) contexts may connect to (repeatable; replaces the list)', collect, [])
    .option(
      '--host-netns <path>',
      "network namespace the gateway, the ports and NAT live in (default: the host's own; tests use one of their own)",
    )
    .option(
      '--egress-pool <auto|none|cidr>',
      "where new shared contexts get addresses that reach the world: auto (the default: a free private range picked at the first create), a CIDR, or none (the 127.x pool, cut off from the world); local on paene-egress, source NAT out to the host's address (docs/network.md, Egress)",
    )
    .option(
      '--dns <ip[,ip]|host>',
      "nameservers for the resolv.conf of this root's contexts that reach the world; host: the host's own (the default, loopback ones left out)",
    )
    .option('--json', 'print JSON')
    .action(
      (
        o: {
          dns?: string;
          sharedPool?: string;
          bridge?: string;
          subnet?: string;
          publishHost: string[];
          hostNetns?: string;
          egressPool?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const s = changeNetSettings(runtimeOf(cmd), o);
        if (o.json) printJson(s);
        else {
          console.log(`shared pool   ${s.sharedPool4}`);
          console.log(
            `bridge        ${s.bridge.bridge} ${s.bridge.subnet4}${s.bridge.table !== undefined ? ` (nft table ${s.bridge.table}, veths ${s.bridge.portPrefix}XID)` : ''}`,
          );
          console.log(`published     ${s.published.join(' ') || "(none: the host's own addresses are refused)"}`);
          console.log(`host netns    ${s.hostNetns ?? "(the host's own)"}`);
          console.log(`dns           ${s.dns?.join(' ') ?? "(the host's resolvers, loopback ones left out)"}`);
          console.log(
            `egress pool   ${s.egressPool4 ?? (s.egressAuto ? 'auto (picked at the first create of a shared context)' : `none (shared contexts get ${s.sharedPool4}: no way out)`)}${s.egressPool4 && s.egressAuto ? ' (auto)' : ''}`,
          );
        }
      },
    );
}
