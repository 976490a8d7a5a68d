// The profiles of a state root (docs/profiles.md): ROOT/profiles/NAME.json,
// each written atomically, created, edited and removed under one lock file
// (ROOT/profiles/.lock) so two callers never lose each other's change. What a
// setting means and how profiles merge is model/profile.ts; here they are
// stored, and the network's words (--net, --egress) checked by its model.

import fs from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '../kernel/atomic.js';
import { acquireFileLockSync } from '../kernel/filelock.js';
import { PaeneError, errnoOf } from '../model/errors.js';
import {
  PROFILES_MAX,
  PROFILES_PER_CREATE_MAX,
  type Profile,
  type ProfileSettings,
  editSettings,
  mergeSettings,
  validateProfileName,
  validateSettings,
} from '../model/profile.js';
import { netSpecFrom } from '../net/model.js';
import { makeCapSpec, parseCcap, validateCcaps } from '../model/caps.js';
import { DEFAULT_LIMITS, mergeLimits } from '../model/limits.js';
import { LIMIT_FLAGS, parseLimitFlags } from '../model/limitflags.js';
import { parseMountArg, validateMounts } from '../model/mounts.js';
import { envOf, splitCommand } from '../model/profile.js';
import { DEFAULT_LOG, parseInit, parseRestart, validateMain } from '../model/service.js';
import { parseCount, parseSize } from '../model/units.js';
import type { NewRequest } from './runtime.js';

/** A profile file larger than this is not read (its settings are bounded far below it). */
const PROFILE_FILE_MAX = 4 << 20;

export class ProfileStore {
  readonly dir: string;
  constructor(root: string) {
    this.dir = path.join(root, 'profiles');
  }

  private file(name: string): string {
    return path.join(this.dir, `${validateProfileName(name)}.json`);
  }

  names(): string[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.dir);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return [];
      throw e;
    }
    return entries
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -5))
      .sort();
  }

  list(): Profile[] {
    return this.names().flatMap((n) => {
      try {
        return [this.get(n)];
      } catch (e) {
        if (e instanceof PaeneError && e.code === 'not-found') return []; // removed meanwhile
        throw e;
      }
    });
  }

  get(name: string): Profile {
    const file = this.file(name);
    let text: string;
    try {
      if (fs.statSync(file).size > PROFILE_FILE_MAX) throw new PaeneError('internal', `profile '${name}': ${file} is too large`);
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') throw new PaeneError('not-found', `no profile '${name}' (paene profile ls)`);
      throw e;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new PaeneError('internal', `profile '${name}': ${file} is not JSON`);
    }
    const settings = (raw as { settings?: unknown } | null)?.settings;
    return { name, settings: checked(settings, `profile '${name}'`) };
  }

  create(name: string, settings: ProfileSettings): Profile {
    const profile = { name: validateProfileName(name), settings: checked(settings, `profile '${name}'`) };
    return this.locked(() => {
      if (fs.existsSync(this.file(name))) throw new PaeneError('exists', `profile '${name}' exists (paene profile edit ${name})`);
      if (this.names().length >= PROFILES_MAX)
        throw new PaeneError('limit-exceeded', `a state root holds at most ${PROFILES_MAX} profiles`);
      writeJsonAtomic(this.file(name), profile);
      return profile;
    });
  }

  edit(name: string, set: ProfileSettings, unset: readonly string[]): Profile {
    return this.locked(() => {
      const cur = this.get(name);
      const profile = { name: cur.name, settings: checked(editSettings(cur.settings, set, unset), `profile '${name}'`) };
      writeJsonAtomic(this.file(name), profile);
      return profile;
    });
  }

  remove(name: string): { removed: string } {
    return this.locked(() => {
      this.get(name);
      fs.rmSync(this.file(name));
      return { removed: name };
    });
  }

  /** The named profiles merged in order (model/profile.ts): what `create --profile A --profile B` applies. */
  merged(names: readonly string[]): ProfileSettings {
    if (names.length > PROFILES_PER_CREATE_MAX)
      throw new PaeneError('invalid-argument', `a create applies at most ${PROFILES_PER_CREATE_MAX} profiles, got ${names.length}`);
    return mergeSettings(names.map((n) => this.get(n).settings));
  }

  private locked<T>(fn: () => T): T {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const lock = acquireFileLockSync(path.join(this.dir, '.lock'), 10_000, (pid) => `the profiles are being changed by pid ${pid}`);
    try {
      return fn();
    } finally {
      lock.release();
    }
  }
}

/** Settings checked whole: the model's checks, then the network's words. */
function checked(raw: unknown, where: string): ProfileSettings {
  const s = validateSettings(raw, where);
  if (s.net !== undefined || s.egress !== undefined || s.dns !== undefined) {
    try {
      netSpecFrom({
        mode: s.net as string | undefined,
        ips: [],
        publish: [],
        egress: s.egress as string | undefined,
        dns: Array.isArray(s.dns) ? s.dns : [],
      });
    } catch (e) {
      if (e instanceof PaeneError) throw new PaeneError(e.code, `${where}: ${e.message}`);
      throw e;
    }
  }
  return s;
}

/**
 * Settings as the fields of a create request (the API's create with
 * `profiles`): each through its flag's parser, as create parses the flags.
 * Only the settings present appear.
 */
export function specOfSettings(s: ProfileSettings): Partial<Omit<NewRequest, 'name'>> {
  const str = (k: string) => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
  const list = (k: string) => (Array.isArray(s[k]) ? (s[k] as string[]) : []);
  const out: Partial<Omit<NewRequest, 'name'>> = {};
  if (s.image !== undefined) out.image = str('image');
  if (s.caps !== undefined || s['cap-add'] !== undefined || s['cap-drop'] !== undefined)
    out.caps = makeCapSpec(str('caps') ?? 'secure', list('cap-add'), list('cap-drop'));
  if (s.ccap !== undefined) out.ccaps = validateCcaps([...new Set(list('ccap').map(parseCcap))]);
  const limits = Object.fromEntries(LIMIT_FLAGS.filter((f) => str(f.flag) !== undefined).map((f) => [f.flag, str(f.flag)]));
  if (Object.keys(limits).length > 0) out.limits = mergeLimits(DEFAULT_LIMITS, parseLimitFlags(limits));
  const disk = str('disk');
  if (disk !== undefined) {
    const inodes = str('inodes');
    out.disk = { bytes: parseSize(disk, '--disk'), ...(inodes !== undefined ? { inodes: parseCount(inodes, '--inodes', 16) } : {}) };
  }
  if (s.net !== undefined || s.egress !== undefined || s.dns !== undefined)
    out.net = netSpecFrom({ mode: str('net'), egress: str('egress'), dns: list('dns') });
  if (s.cmd === false) out.main = 'none';
  else if (s.cmd !== undefined || s.env !== undefined || s.workdir !== undefined || s.user !== undefined) {
    const cmd = str('cmd');
    out.main = validateMain(
      {
        ...(cmd !== undefined ? { argv: splitCommand(cmd) } : {}),
        ...(s.env !== undefined ? { env: envOf(list('env')) } : {}),
        ...(s.workdir !== undefined ? { cwd: s.workdir } : {}),
        ...(s.user !== undefined ? { user: s.user } : {}),
      },
      'profile',
    );
  }
  if (s.mount !== undefined) out.mounts = validateMounts(list('mount').map(parseMountArg), 'profile');
  const restart = str('restart');
  if (restart !== undefined) out.restart = parseRestart(restart);
  if (s['log-size'] !== undefined || s['log-keep'] !== undefined) {
    const size = str('log-size');
    const keep = str('log-keep');
    out.log = {
      maxBytes: size === undefined ? DEFAULT_LOG.maxBytes : parseSize(size, '--log-size'),
      keep: keep === undefined ? DEFAULT_LOG.keep : parseCount(keep, '--log-keep', 0),
    };
  }
  if (s.autostart !== undefined)
    out.autostart = { order: s.autostart === true ? 0 : parseCount(str('autostart') ?? '0', '--autostart', 0) };
  const init = str('init');
  if (init !== undefined) out.init = parseInit(init);
  return out;
}
