// Profiles: the pure merge and check of model/profile.ts, and the store of
// runtime/profiles.ts on a temporary directory (no kernel needed).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PaeneError } from '../../src/model/errors.js';
import {
  PROFILE_LIST_MAX,
  applySettings,
  editSettings,
  mergeSettings,
  optionKey,
  validateProfileName,
  validateSettings,
} from '../../src/model/profile.js';
import { ProfileStore, specOfSettings } from '../../src/runtime/profiles.js';

const refused = (fn: () => unknown, re: RegExp) => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PaeneError);
    expect((e as PaeneError).message).toMatch(re);
    return;
  }
  throw new Error('not refused');
};

describe('profile settings', () => {
  it("are create's flags, checked as create checks them", () => {
    expect(validateSettings({ memory: '512M', restart: 'always', env: ['A=1'], cmd: false, autostart: true })).toEqual({
      cmd: false,
      env: ['A=1'],
      restart: 'always',
      autostart: true,
      memory: '512M',
    });
    refused(() => validateSettings({ memory: 'lots' }), /--memory/);
    refused(() => validateSettings({ restart: 'sometimes' }), /--restart/);
    refused(() => validateSettings({ caps: 'root' }), /capability profile/);
    refused(() => validateSettings({ 'cap-add': ['NOT_A_CAP'] }), /NOT_A_CAP/);
    refused(() => validateSettings({ env: ['NOEQUALS'] }), /KEY=VALUE/);
    refused(() => validateSettings({ workdir: 'relative' }), /absolute/);
    refused(() => validateSettings({ 'log-size': '1K' }), /at least/);
    refused(() => validateSettings({ init: '../x' }), /--init/);
  });

  it('refuse what names one context, unknown fields, wrong kinds and past their bounds', () => {
    refused(() => validateSettings({ xid: '5' }), /'xid' is not a profile setting/);
    refused(() => validateSettings({ ip: ['127.0.0.9'] }), /'ip' is not/);
    refused(() => validateSettings({ hostname: 'h' }), /not a profile setting/);
    refused(() => validateSettings({ memory: 512 }), /non-empty string/);
    refused(() => validateSettings({ env: 'A=1' }), /list/);
    refused(() => validateSettings({ cmd: true }), /or false/);
    refused(() => validateSettings({ image: 'x'.repeat(5000) }), /at most 4096/);
    refused(() => validateSettings({ env: Array.from({ length: PROFILE_LIST_MAX + 1 }, (_, i) => `K${i}=v`) }), /at most 256/);
    refused(() => validateSettings(['memory']), /JSON object/);
    refused(() => validateSettings(null), /JSON object/);
  });

  it('have names as contexts do', () => {
    expect(validateProfileName('web-small_1')).toBe('web-small_1');
    refused(() => validateProfileName('../etc'), /invalid profile name/);
    refused(() => validateProfileName('Web'), /invalid profile name/);
    refused(() => validateProfileName(''), /invalid profile name/);
  });
});

describe('merging profiles', () => {
  it('a later profile wins a scalar; lists add up, env by KEY', () => {
    const m = mergeSettings([
      { memory: '512M', caps: 'strict', env: ['A=1', 'B=2'], 'cap-add': ['NET_RAW'] },
      { memory: '128M', env: ['B=3', 'C=4'], 'cap-add': ['NET_RAW', 'SYS_TIME'] },
    ]);
    expect(m).toEqual({ memory: '128M', caps: 'strict', env: ['A=1', 'B=3', 'C=4'], 'cap-add': ['NET_RAW', 'SYS_TIME'] });
    expect(mergeSettings([])).toEqual({});
    // mounts by destination: the later profile's source wins
    expect(mergeSettings([{ mount: ['a:/data', 'b:/srv'] }, { mount: ['c:/data:ro'] }])).toEqual({ mount: ['c:/data:ro', 'b:/srv'] });
    refused(() => validateSettings({ mount: ['/srv:/proc/x'] }), /proc/);
    refused(() => validateSettings({ mount: ['nodst'] }), /SOURCE:DESTINATION/);
  });

  it('the flags given to create win over every profile', () => {
    const merged = { memory: '512M', restart: 'always', env: ['A=1', 'B=2'], cmd: false } as const;
    const options = { memory: '64M', restart: 'no', logSize: '10M', env: ['B=9'], cmd: undefined };
    const given = (k: string) => k === 'memory' || k === 'env';
    const out = applySettings({ ...merged, env: [...merged.env] }, options, given);
    // memory given: kept; restart only defaulted: the profile's; env: the profile's, then the command line's (B=9 wins)
    expect(out).toMatchObject({ memory: '64M', restart: 'always', logSize: '10M', cmd: false, env: ['A=1', 'B=9'] });
    expect(options.restart).toBe('no'); // a new object
    expect(optionKey('log-size')).toBe('logSize');
    expect(optionKey('cap-add')).toBe('capAdd');
  });

  it('edit sets fields (a list whole), unsets others, and checks the result', () => {
    const cur = { memory: '512M', env: ['A=1'], restart: 'always' };
    expect(editSettings(cur, { env: ['B=2'], cpu: '50%' }, ['restart'])).toEqual({ env: ['B=2'], cpu: '50%', memory: '512M' });
    refused(() => editSettings(cur, {}, ['nothing']), /'nothing' is not a profile setting/);
    refused(() => editSettings(cur, { memory: '1G' }, ['memory']), /both set and unset/);
    refused(() => editSettings(cur, { memory: 'x' }, []), /--memory/);
  });
});

describe('the profile store', () => {
  const dirs: string[] = [];
  const store = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-profile-'));
    dirs.push(d);
    return new ProfileStore(d);
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('creates, lists, shows, edits and removes; a file each, nothing left behind', () => {
    const s = store();
    expect(s.list()).toEqual([]);
    s.create('web', { memory: '512M' });
    s.create('db', { net: 'private', egress: 'none' });
    expect(s.names()).toEqual(['db', 'web']);
    expect(() => s.create('web', {})).toThrow(/exists/);
    expect(s.edit('web', { restart: 'always' }, ['memory']).settings).toEqual({ restart: 'always' });
    expect(s.get('web').settings).toEqual({ restart: 'always' });
    expect(s.merged(['db', 'web'])).toEqual({ net: 'private', egress: 'none', restart: 'always' });
    expect(s.remove('db')).toEqual({ removed: 'db' });
    expect(() => s.get('db')).toThrow(/no profile 'db'/);
    expect(() => s.merged(['web', 'db'])).toThrow(/no profile 'db'/);
    expect(fs.readdirSync(s.dir).sort()).toEqual(['web.json']); // no lock, no temporary file
  });

  it("checks the network's words, and a file edited by hand", () => {
    const s = store();
    expect(() => s.create('x', { net: 'none', egress: 'nat' })).toThrow(/egress/);
    expect(() => s.create('y', { net: 'bridge' })).toThrow(/bridge/);
    // nameservers: held, and checked as create's --dns (no loopback: a context's 127.0.0.1 is its own)
    expect(s.create('d', { dns: ['9.9.9.9,1.1.1.1'] }).settings).toEqual({ dns: ['9.9.9.9,1.1.1.1'] });
    expect(specOfSettings(s.get('d').settings).net?.dns).toEqual(['9.9.9.9', '1.1.1.1']);
    expect(() => s.create('d2', { dns: ['127.0.0.53'] })).toThrow(/loopback/);
    expect(() => s.create('d3', { net: 'none', dns: ['9.9.9.9'] })).toThrow(/--dns is for shared and private/);
    expect(() => s.create('../z', {})).toThrow(/invalid profile name/);
    s.create('w', {});
    fs.writeFileSync(path.join(s.dir, 'w.json'), JSON.stringify({ name: 'w', settings: { xid: '9' } }));
    expect(() => s.get('w')).toThrow(/'xid' is not a profile setting/);
    fs.writeFileSync(path.join(s.dir, 'w.json'), '{');
    expect(() => s.get('w')).toThrow(/not JSON/);
  });
});
