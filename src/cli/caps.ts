// Split-root verbs: `paene caps` (what a context's processes hold, and the
// profiles), `paene hostname` (set a context's name from the host) and
// `paene config` (change a stopped context's capabilities and ccaps, and
// a context's mounts).

import type { Command } from 'commander';
import {
  CAP_PROFILES,
  CAP_SET_NAMES,
  type DecodedCaps,
  capMask,
  formatCapHex,
  maskToNames,
  parseCapName,
  parseCapProfile,
  changeCapSpec,
  profilesReport,
  validateCcaps,
} from '../model/caps.js';
import { PaeneError } from '../model/errors.js';
import { checkNetAgainstCaps, validateHostname } from '../context/config.js';
import { liveCaps } from '../runtime/caps.js';
import { runtimeOf } from './common.js';
import { formatTable, printJson } from './format.js';
import { type ManyOptions, type Outcome, namesOf, report, runMany } from './many.js';
import type { ContextConfig } from '../context/config.js';
import { parseMountArg } from '../model/mounts.js';
import { changeMounts } from '../runtime/mountchange.js';

/** A config's mounts in a line: SRC:DST[:ro] each. */
function mountsText(c: ContextConfig): string {
  return (c.mounts ?? []).map((m) => `${m.source}:${m.target}${m.readonly ? ':ro' : ''}`).join(' ');
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function printDecoded(title: string, d: DecodedCaps, expected: bigint): void {
  console.log(`${title}`);
  for (const k of CAP_SET_NAMES) {
    const s = d.sets[k];
    const extra = maskToNames(BigInt(`0x${s.hex}`) & ~expected);
    const names = s.names.length === 0 ? '(none)' : s.names.join(' ');
    console.log(`  ${k.slice(3)}  ${s.hex}  ${names}${extra.length ? `   BEYOND THE PROFILE: ${extra.join(' ')}` : ''}`);
  }
  console.log(`  Seccomp  ${d.seccomp}`);
}

function printProfiles(): void {
  const r = profilesReport();
  for (const p of r.profiles) {
    console.log(
      `${p.profile} (mask ${p.mask})${p.profile === 'privileged' ? '  -- every capability, no seccomp filter: guest root can escape' : ''}`,
    );
    console.log(`  keeps:   ${p.keeps.join(' ')}`);
    if (p.removes.length) {
      console.log('  removes:');
      console.log(
        formatTable(p.removes, [
          { header: '    CAPABILITY', get: (x) => `    ${x.name}` },
          { header: 'WHY', get: (x) => x.reason },
        ]),
      );
    }
    console.log('');
  }
  console.log('context capabilities (--ccap), none granted by default:');
  console.log(
    formatTable(r.ccaps, [
      { header: '  CCAP', get: (c) => `  ${c.name}` },
      { header: 'OFFERED', get: (c) => (c.offered ? 'yes' : 'no (no safe mapping)') },
      { header: 'MEANING', get: (c) => c.meaning },
    ]),
  );
  console.log('');
  for (const c of r.ccaps) console.log(`  ${c.name}: ${c.how}\n`);
}

export function registerCapsCommands(program: Command): void {
  program
    .command('caps')
    .description(
      'Show the capability sets (inheritable, permitted, effective, bounding, ambient) of a running ' +
        "context's init and of a fresh exec, decoded by name, with the seccomp mode. Without a name " +
        '(or with --list): the profiles, what each keeps, why each removed capability is removed, and ' +
        'the context capabilities (ccaps) with how each maps.',
    )
    .argument('[name]', 'a running context')
    .option('--list', 'list the profiles and ccaps (also what a bare `paene caps` does)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  paene caps web1\n  paene caps --list\n  paene create web2 --caps strict --cap-add NET_RAW --cap-drop SYS_PTRACE\n  paene config web2 --caps secure   (context stopped)',
    )
    .action(async (name: string | undefined, o: { list?: boolean; json?: boolean }, cmd: Command) => {
      if (!name || o.list) {
        if (o.json) printJson(profilesReport());
        else printProfiles();
        return;
      }
      const rt = runtimeOf(cmd);
      const r = await liveCaps(rt, name);
      if (o.json) {
        printJson(r);
        return;
      }
      const expected = BigInt(`0x${r.expected.hex}`);
      const spec = r.caps;
      console.log(
        `context ${name}: profile ${spec.profile}${spec.add.length ? ` +${spec.add.join(' +')}` : ''}${spec.drop.length ? ` -${spec.drop.join(' -')}` : ''}; ccaps: ${r.ccaps.join(' ') || '(none)'}`,
      );
      console.log(`expected mask ${r.expected.hex}\n`);
      printDecoded(`init (host pid ${r.init.hostPid}, pid 1 inside):`, r.init, expected);
      console.log('');
      printDecoded('a fresh exec (cat /proc/self/status):', r.exec, expected);
    });

  program
    .command('hostname')
    .description(
      "Set a context's hostname from the host. A running context gets it at once (only its own UTS " +
        "namespace changes, never the host's); the config keeps it for the next start. Guest root cannot " +
        'do this itself unless the context has the SET_UTSNAME ccap.',
    )
    .argument('<name>', 'the context')
    .argument('<hostname>', 'letters, digits, - and dots, at most 64 characters')
    .action(async (name: string, hostname: string, _o: unknown, cmd: Command) => {
      const h = validateHostname(hostname);
      const rt = runtimeOf(cmd);
      let running = false;
      await rt.changeConfig(
        name,
        (c, live) => {
          running = live;
          return { ...c, hostname: h };
        },
        { applyLive: () => rt.setSysctls(name, { 'kernel.hostname': h }) },
      );
      console.log(running ? `hostname of '${name}' is now ${h}` : `hostname of '${name}' will be ${h} from its next start`);
    });

  program
    .command('config')
    .description(
      "Change a stopped context's capability profile, single capabilities and context capabilities " +
        '(they apply at start, so a running context must be stopped first). Without options: show them. ' +
        'Capability names are case-insensitive, with or without CAP_; see `paene caps --list`. ' +
        'Its bind mounts and volumes (--mount, --unmount) change also while it runs: they apply at its next start.',
    )
    .argument('[names...]', 'context names or patterns (web*); several, a pattern or --all change each')
    .option('-a, --all', 'every context of this root')
    .option('-j, --jobs <n>', 'contexts worked on at once (default: 2 × CPUs)')
    .option('--caps <profile>', `capability profile: ${CAP_PROFILES.join(', ')} (privileged warns)`)
    .option('--cap-add <cap>', 'keep a capability the profile removes (repeatable)', collect, [])
    .option('--cap-drop <cap>', 'remove a capability the profile keeps (repeatable)', collect, [])
    .option('--reset-caps', 'forget earlier --cap-add/--cap-drop')
    .option('--ccap <ccap>', 'grant a context capability (repeatable)', collect, [])
    .option('--drop-ccap <ccap>', 'withdraw a context capability (repeatable)', collect, [])
    .option(
      '-v, --mount <SRC:DST[:ro]>',
      'add a bind mount or volume, as create --mount (repeatable; replaces a mount on the same DST); from the next start, also while it runs',
      collect,
      [],
    )
    .option('--unmount <DST>', 'drop the mount on DST (repeatable); from the next start', collect, [])
    .option('--json', 'print the resulting config as JSON')
    .action(
      async (
        args: string[],
        o: ManyOptions & {
          caps?: string;
          capAdd: string[];
          capDrop: string[];
          resetCaps?: boolean;
          ccap: string[];
          dropCcap: string[];
          mount: string[];
          unmount: string[];
        },
        cmd: Command,
      ) => {
        const rt = runtimeOf(cmd);
        const { names, many } = namesOf(rt, args, o);
        const ccapAdd = o.ccap;
        const ccapDel = o.dropCcap;
        const changing =
          o.caps !== undefined || o.capAdd.length > 0 || o.capDrop.length > 0 || o.resetCaps || ccapAdd.length > 0 || ccapDel.length > 0;
        const mounts = o.mount.map(parseMountArg);
        const mountsChanging = mounts.length > 0 || o.unmount.length > 0;
        if (!changing && mountsChanging) {
          // mounts apply at the next start: a running context's config changes too
          await runMany(
            rt,
            args,
            o,
            (n) => changeMounts(rt, n, mounts, o.unmount),
            (n, next) => `'${n}': mounts [${mountsText(next)}] (from its next start)`,
          );
          return;
        }
        if (!changing) {
          const outcomes = names.map((n): Outcome<ContextConfig> => {
            try {
              return { ok: true, value: rt.config(n) };
            } catch (e) {
              return { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
            }
          });
          report(
            names,
            many,
            outcomes,
            o,
            (n, cur) =>
              `${many ? `${n}: ` : ''}caps: ${JSON.stringify(cur.caps)}\n${many ? `${n}: ` : ''}ccaps: ${cur.ccaps.join(' ') || '(none)'}\n${many ? `${n}: ` : ''}mounts: ${mountsText(cur) || '(none)'}`,
            (_n, cur) => ({ caps: cur.caps, ccaps: cur.ccaps, mounts: cur.mounts ?? [] }),
          );
          return;
        }
        const adds = o.capAdd.map(parseCapName);
        const drops = o.capDrop.map(parseCapName);
        const del = ccapDel.map((c) =>
          c
            .trim()
            .toUpperCase()
            .replace(/^(CCAP_|VXC_)/, ''),
        );
        if (o.caps !== undefined && parseCapProfile(o.caps) === 'privileged') {
          process.stderr.write(
            'paene: warning: the privileged profile gives guest root every capability and no seccomp filter; it can escape the context\n',
          );
        }
        // Merged and checked under the context's lock, with the write: no start or other change slips in between.
        const change = (name: string) =>
          rt
            .changeConfig(name, (c, running) => {
              if (running)
                throw new PaeneError(
                  'wrong-state',
                  `context '${name}' is running: stop it first ('paene stop ${name}'); capabilities are fixed when it starts`,
                );
              const caps = changeCapSpec(c.caps, { profile: o.caps, add: adds, drop: drops, reset: o.resetCaps === true });
              const ccaps = validateCcaps([...c.ccaps.filter((x) => !del.includes(x)), ...ccapAdd]);
              return { ...c, caps, ccaps, net: checkNetAgainstCaps(c.net, caps) };
            })
            .then((next) => (mountsChanging ? changeMounts(rt, name, mounts, o.unmount) : next));
        await runMany(rt, args, o, change, (n, next) => {
          const mask = capMask(next.caps);
          const head = `'${n}': profile ${next.caps.profile}, add [${next.caps.add.join(' ')}], drop [${next.caps.drop.join(' ')}], ccaps [${next.ccaps.join(' ')}]`;
          return many ? head : `${head}\nguest root will hold (${formatCapHex(mask)}): ${maskToNames(mask).join(' ') || '(nothing)'}`;
        });
      },
    );
}
