// `paene profile create|ls|show|edit|rm`: named sets of create's settings
// (model/profile.ts, runtime/profiles.ts; docs/profiles.md).

import type { Command } from 'commander';
import { PaeneError } from '../model/errors.js';
import { PROFILE_FIELDS, type Profile, type ProfileSettings, optionKey } from '../model/profile.js';
import { ProfileStore } from '../runtime/profiles.js';
import { rootOf } from './common.js';
import { addSettingOptions } from './context.js';
import { formatTable, printJson } from './format.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The settings given on this command line (create's flags), as a profile holds them. */
function givenSettings(o: Record<string, unknown>, cmd: Command): ProfileSettings {
  for (const f of ['ip', 'publish'])
    if (cmd.getOptionValueSource(f) === 'cli')
      throw new PaeneError('invalid-argument', `--${f} names one context's own; a profile cannot hold it (give it to create)`);
  const out: ProfileSettings = {};
  for (const field of PROFILE_FIELDS.keys()) {
    const key = optionKey(field);
    if (cmd.getOptionValueSource(key) === 'cli') out[field] = o[key] as ProfileSettings[string];
  }
  return out;
}

/** A setting as a flag would say it: --memory 512M, --no-cmd, --env A=1 --env B=2. */
function flagsOf(s: ProfileSettings): string {
  return Object.entries(s)
    .flatMap(([k, v]) => {
      if (v === false) return [`--no-${k}`];
      if (v === true) return [`--${k}`];
      return (Array.isArray(v) ? v : [v]).map((x) => `--${k} ${/^[\w.:%/=,+-]+$/.test(x) ? x : JSON.stringify(x)}`);
    })
    .join(' ');
}

function print(p: Profile, json: boolean | undefined, what: string): void {
  if (json) printJson(p);
  else process.stdout.write(`${what} profile '${p.name}': ${flagsOf(p.settings) || '(no settings)'}\n`);
}

export function registerProfileCommands(program: Command): void {
  const profile = program
    .command('profile')
    .description("Profiles: named sets of create's settings that `paene create --profile NAME` applies")
    .addHelpText(
      'after',
      `
A profile holds create's flags (limits, --caps, --cap-add, --net, --egress, --restart, --env, --cmd,
--autostart, --init, --disk, ...), checked as create checks them; not the ones that name one context
(--xid, --hostname, --ip, --publish). create --profile A --profile B: a later profile wins a setting,
lists (--env by KEY, --cap-add, --cap-drop, --ccap) add up; the flags given to create win over all.
A context copies the values when it is created: editing or removing a profile later changes no context.
(--caps secure|strict|privileged is the capability profile, a different thing.)`,
    );

  addSettingOptions(
    profile
      .command('create')
      .description("Create a profile from create's flags")
      .argument('<name>', 'profile name: 1-63 of [a-z0-9_-], starting with a letter or digit')
      .option('--json', 'print the profile as JSON'),
    false,
  ).action((name: string, o: Record<string, unknown>, cmd: Command) => {
    print(new ProfileStore(rootOf(cmd)).create(name, givenSettings(o, cmd)), o.json as boolean, 'created');
  });

  profile
    .command('ls')
    .description('Every profile with its settings')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }, cmd: Command) => {
      const all = new ProfileStore(rootOf(cmd)).list();
      if (o.json) return printJson(all);
      if (all.length === 0) return void process.stdout.write('no profiles (paene profile create NAME --memory 512M ...)\n');
      process.stdout.write(
        formatTable(all, [
          { header: 'NAME', get: (p: Profile) => p.name },
          { header: 'SETTINGS', get: (p: Profile) => flagsOf(p.settings) || '-' },
        ]) + '\n',
      );
    });

  profile
    .command('show')
    .description("A profile's settings")
    .argument('<name>')
    .option('--json', 'print JSON')
    .action((name: string, o: { json?: boolean }, cmd: Command) => {
      print(new ProfileStore(rootOf(cmd)).get(name), o.json, 'the');
    });

  addSettingOptions(
    profile
      .command('edit')
      .description('Change a profile: the flags given replace its settings (a list whole), --unset removes one')
      .argument('<name>')
      .option('--unset <setting>', "remove a setting: its flag's name without -- (memory, env, cap-add; repeatable)", collect, [])
      .option('--json', 'print the profile as JSON'),
    false,
  ).action((name: string, o: Record<string, unknown>, cmd: Command) => {
    const set = givenSettings(o, cmd);
    const unset = (o.unset as string[]).map((u) => u.replace(/^--/, ''));
    if (Object.keys(set).length === 0 && unset.length === 0)
      throw new PaeneError('invalid-argument', "profile edit wants a setting to change (create's flags) or --unset SETTING");
    print(new ProfileStore(rootOf(cmd)).edit(name, set, unset), o.json as boolean, 'edited');
  });

  profile
    .command('rm')
    .description('Remove profiles (the contexts created with them keep their settings: they were copied)')
    .argument('<names...>')
    .option('--json', 'print JSON')
    .action((names: string[], o: { json?: boolean }, cmd: Command) => {
      const store = new ProfileStore(rootOf(cmd));
      const out = names.map((n) => store.remove(n));
      if (o.json) printJson(out);
      else for (const r of out) process.stdout.write(`removed profile '${r.removed}'\n`);
    });
}
