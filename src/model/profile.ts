// Profiles (`paene profile`, docs/profiles.md): a named set of create-time
// settings that `paene create --profile P` applies. A profile holds its
// settings as create's own flags spell them (`{"memory": "512M", "restart":
// "always", "env": ["A=1"]}`), so each value is checked by the same code as
// the flag, and a profile reads like the command line it stands for.
//
// Merging (pure, here): several profiles apply in order, a later one wins a
// scalar; lists add up (env by KEY, the later value winning; cap-add,
// cap-drop and ccap as a set). Flags given on the command line win over
// every profile: a scalar replaces, a list adds (an explicit --env KEY=...
// wins over a profile's KEY).

import { makeCapSpec, parseCcap, validateCcaps } from './caps.js';
import { PaeneError } from './errors.js';
import { LIMIT_FLAGS, parseLimitFlags } from './limitflags.js';
import { MOUNTS_MAX, parseMountArg } from './mounts.js';
import { validateName } from './names.js';
import { LOG_BYTES_MIN, parseInit, parseRestart, validateMain } from './service.js';
import { parseCount, parseSize } from './units.js';

/** How a setting is spelled: one word, a list of words, or a word or `false`/`true` (--no-cmd, --autostart). */
type Kind = 'string' | 'list' | 'string-or-false' | 'string-or-true';

/** The create flags a profile may hold (per-context ones, xid, hostname, ip, publish, count, are not: they name one context). */
export const PROFILE_FIELDS: ReadonlyMap<string, Kind> = new Map<string, Kind>([
  ['image', 'string'],
  ['caps', 'string'],
  ['cap-add', 'list'],
  ['cap-drop', 'list'],
  ['ccap', 'list'],
  ['cmd', 'string-or-false'],
  ['env', 'list'],
  ['workdir', 'string'],
  ['user', 'string'],
  ['restart', 'string'],
  ['log-size', 'string'],
  ['log-keep', 'string'],
  ['autostart', 'string-or-true'],
  ['init', 'string'],
  ['disk', 'string'],
  ['inodes', 'string'],
  ['mount', 'list'],
  ['net', 'string'],
  ['egress', 'string'],
  ['dns', 'list'],
  ...LIMIT_FLAGS.map((f): [string, Kind] => [f.flag, 'string']),
]);

/** A profile's settings: create's flag name (without --) -> its value. */
export type ProfileSettings = Record<string, string | boolean | string[]>;

export interface Profile {
  name: string;
  settings: ProfileSettings;
}

/** The longest value and the most list entries a setting may have. */
export const PROFILE_VALUE_MAX = 4096;
export const PROFILE_LIST_MAX = 256;
/** The most profiles a root holds, and one create applies. */
export const PROFILES_MAX = 10_000;
export const PROFILES_PER_CREATE_MAX = 32;

/** commander's option key of a flag (log-size -> logSize). */
export function optionKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

export function validateProfileName(name: unknown): string {
  if (typeof name !== 'string') throw new PaeneError('invalid-argument', 'a profile name is a string');
  try {
    return validateName(name);
  } catch (e) {
    if (e instanceof PaeneError) throw new PaeneError(e.code, e.message.replace(/context name/g, 'profile name'));
    throw e;
  }
}

/**
 * Checks settings as create checks its flags: every field known, every value
 * of its kind and within its bounds, and valid as the flag would be. Returns
 * them in the fields' order (a stable file).
 */
export function validateSettings(raw: unknown, where = 'profile'): ProfileSettings {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new PaeneError('invalid-argument', `${where}: settings are a JSON object of create's flags`);
  const given = raw as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !PROFILE_FIELDS.has(k));
  if (unknown.length > 0)
    throw new PaeneError(
      'invalid-argument',
      `${where}: ${unknown.map((k) => `'${k}'`).join(', ')} is not a profile setting (one of ${[...PROFILE_FIELDS.keys()].join(', ')})`,
    );
  const out: ProfileSettings = {};
  for (const [field, kind] of PROFILE_FIELDS) {
    const v = given[field];
    if (v === undefined) continue;
    out[field] = checkKind(field, kind, v, where);
  }
  checkValues(out, where);
  return out;
}

function checkKind(field: string, kind: Kind, v: unknown, where: string): string | boolean | string[] {
  const word = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= PROFILE_VALUE_MAX;
  if (kind === 'list') {
    if (Array.isArray(v) && v.length <= PROFILE_LIST_MAX && v.every(word)) return [...v];
    throw new PaeneError('invalid-argument', `${where}: '${field}' is a list of at most ${PROFILE_LIST_MAX} non-empty strings`);
  }
  if (word(v)) return v;
  if (kind === 'string-or-false' && v === false) return false;
  if (kind === 'string-or-true' && v === true) return true;
  const extra = kind === 'string-or-false' ? ' or false' : kind === 'string-or-true' ? ' or true' : '';
  throw new PaeneError('invalid-argument', `${where}: '${field}' is a non-empty string of at most ${PROFILE_VALUE_MAX} characters${extra}`);
}

/** The values, each through the parser of its flag (the network's mode and egress are checked where the network model lives). */
function checkValues(s: ProfileSettings, where: string): void {
  const str = (k: string) => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
  const list = (k: string) => (Array.isArray(s[k]) ? (s[k] as string[]) : []);
  const tag = (e: unknown) => {
    if (e instanceof PaeneError) return new PaeneError(e.code, `${where}: ${e.message}`);
    return e;
  };
  try {
    parseLimitFlags(Object.fromEntries(LIMIT_FLAGS.filter((f) => str(f.flag) !== undefined).map((f) => [f.flag, str(f.flag)])));
    if (s.caps !== undefined || s['cap-add'] !== undefined || s['cap-drop'] !== undefined)
      makeCapSpec(str('caps') ?? 'secure', list('cap-add'), list('cap-drop'));
    validateCcaps(list('ccap').map(parseCcap));
    const restart = str('restart');
    if (restart !== undefined) parseRestart(restart);
    const logSize = str('log-size');
    if (logSize !== undefined && parseSize(logSize, '--log-size') < LOG_BYTES_MIN)
      throw new PaeneError('invalid-argument', `--log-size must be at least ${LOG_BYTES_MIN} bytes`);
    const logKeep = str('log-keep');
    if (logKeep !== undefined) parseCount(logKeep, '--log-keep', 0);
    const autostart = str('autostart');
    if (autostart !== undefined) parseCount(autostart, '--autostart', 0);
    const init = str('init');
    if (init !== undefined) parseInit(init);
    const disk = str('disk');
    if (disk !== undefined) parseSize(disk, '--disk');
    const inodes = str('inodes');
    if (inodes !== undefined) parseCount(inodes, '--inodes', 16);
    if (list('mount').length > MOUNTS_MAX) throw new PaeneError('invalid-argument', `--mount: at most ${MOUNTS_MAX} mounts`);
    for (const m of list('mount')) parseMountArg(m);
    const env = envOf(list('env'));
    const cmd = str('cmd');
    validateMain(
      {
        ...(cmd !== undefined ? { argv: [cmd] } : {}),
        ...(Object.keys(env).length ? { env } : {}),
        ...(s.workdir !== undefined ? { cwd: s.workdir } : {}),
        ...(s.user !== undefined ? { user: s.user } : {}),
      },
      '--cmd/--env/--workdir/--user',
    );
  } catch (e) {
    throw tag(e);
  }
}

/** KEY=VALUE entries as a map (a later KEY wins). */
export function envOf(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of list) {
    const i = e.indexOf('=');
    if (i <= 0) throw new PaeneError('invalid-argument', `--env wants KEY=VALUE, got '${e}'`);
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  return env;
}

/** Two lists of one field added up: env by KEY and mounts by destination (the second's wins), the others as a set in first-seen order. */
function addLists(field: string, a: readonly string[], b: readonly string[]): string[] {
  if (field === 'env') return Object.entries({ ...envOf(a), ...envOf(b) }).map(([k, v]) => `${k}=${v}`);
  if (field === 'mount') return [...new Map([...a, ...b].map((m) => [m.split(':')[1] ?? m, m])).values()];
  return [...new Set([...a, ...b])];
}

/** Several profiles' settings as one: in order, a later profile wins a scalar, lists add up. */
export function mergeSettings(list: readonly ProfileSettings[]): ProfileSettings {
  const out: ProfileSettings = {};
  for (const s of list) {
    for (const [field, v] of Object.entries(s)) {
      const cur = out[field];
      out[field] = Array.isArray(v) && Array.isArray(cur) ? addLists(field, cur, v) : Array.isArray(v) ? [...v] : v;
    }
  }
  return out;
}

/**
 * Create's parsed options (commander's keys) with the merged profile under
 * them: a scalar the command line gave (`given(key)`) stays, any other takes
 * the profile's value; a list is the profile's followed by the command
 * line's. Returns a new object.
 */
export function applySettings(
  merged: ProfileSettings,
  options: Readonly<Record<string, unknown>>,
  given: (key: string) => boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...options };
  for (const [field, v] of Object.entries(merged)) {
    const key = optionKey(field);
    if (Array.isArray(v)) {
      const own = Array.isArray(out[key]) ? (out[key] as string[]) : [];
      out[key] = addLists(field, v, own);
    } else if (!given(key)) out[key] = v;
  }
  return out;
}

/** `profile edit`: `set` replaces fields (a list whole), then `unset` removes them; the result is checked whole. */
export function editSettings(cur: ProfileSettings, set: ProfileSettings, unset: readonly string[]): ProfileSettings {
  const bad = unset.filter((f) => !PROFILE_FIELDS.has(f));
  if (bad.length > 0) throw new PaeneError('invalid-argument', `--unset: ${bad.map((f) => `'${f}'`).join(', ')} is not a profile setting`);
  const both = unset.filter((f) => set[f] !== undefined);
  if (both.length > 0) throw new PaeneError('invalid-argument', `'${both[0]}' is both set and unset`);
  const next: ProfileSettings = { ...cur, ...set };
  for (const f of unset) delete next[f];
  return validateSettings(next);
}

/** A command line split as a shell would (quotes and backslashes; no expansions): `--cmd 'httpd -f -p 80'`. */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === "'") {
      const j = line.indexOf("'", i + 1);
      if (j < 0) throw new PaeneError('invalid-argument', `--cmd: unterminated ' in ${JSON.stringify(line)}`);
      cur += line.slice(i + 1, j);
      has = true;
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length && '"\\$`'.includes(line[j + 1] as string)) j++;
        cur += line[j];
      }
      if (j >= line.length) throw new PaeneError('invalid-argument', `--cmd: unterminated " in ${JSON.stringify(line)}`);
      has = true;
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  if (out.length === 0) throw new PaeneError('invalid-argument', '--cmd: an empty command (use --no-cmd for none)');
  return out;
}
