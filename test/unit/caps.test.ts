import { describe, expect, it } from 'vitest';
import {
  changeCapSpec,
  decodeStatus,
  CAP_LAST_CAP,
  CAP_NAMES,
  CCAPS,
  DEFAULT_CAP_SPEC,
  PROFILE_CAPS,
  REMOVED_REASONS,
  STRICT_REASONS,
  capMask,
  capNumber,
  capSet,
  ccapInfo,
  formatCapHex,
  makeCapSpec,
  maskToNames,
  namesToMask,
  parseCapHex,
  parseCapName,
  parseCcap,
  parseProcStatusCaps,
  removedCaps,
  validateCapSpec,
  validateCcaps,
} from '../../src/model/caps.js';
import { PaeneError } from '../../src/model/errors.js';

describe('capability names', () => {
  it('numbers follow linux/capability.h', () => {
    expect(CAP_LAST_CAP).toBe(40);
    expect(capNumber('CHOWN')).toBe(0);
    expect(capNumber('SETPCAP')).toBe(8);
    expect(capNumber('NET_RAW')).toBe(13);
    expect(capNumber('SYS_ADMIN')).toBe(21);
    expect(capNumber('MKNOD')).toBe(27);
    expect(capNumber('SETFCAP')).toBe(31);
    expect(capNumber('SYSLOG')).toBe(34);
    expect(capNumber('AUDIT_READ')).toBe(37);
    expect(capNumber('PERFMON')).toBe(38);
    expect(capNumber('BPF')).toBe(39);
    expect(capNumber('CHECKPOINT_RESTORE')).toBe(40);
    expect(new Set(CAP_NAMES).size).toBe(41);
  });

  it('parses with or without CAP_, any case', () => {
    expect(parseCapName('cap_net_raw')).toBe('NET_RAW');
    expect(parseCapName('CAP_SYS_ADMIN')).toBe('SYS_ADMIN');
    expect(parseCapName(' chown ')).toBe('CHOWN');
    expect(parseCapName('Sys_Nice')).toBe('SYS_NICE');
  });

  it('rejects unknown names, listing the valid ones', () => {
    expect(() => parseCapName('CAP_FLY')).toThrow(PaeneError);
    try {
      parseCapName('fly');
    } catch (e) {
      expect((e as PaeneError).code).toBe('invalid-argument');
      expect((e as Error).message).toContain("'fly'");
      expect((e as Error).message).toContain('CHECKPOINT_RESTORE');
      expect((e as Error).message).toContain('NET_BIND_SERVICE');
    }
    expect(() => parseCapName('')).toThrow(/unknown capability/);
    expect(() => parseCapName('CAP_')).toThrow(/unknown capability/);
  });
});

describe('profiles', () => {
  it("secure is vserver's secure default", () => {
    expect([...capSet(DEFAULT_CAP_SPEC)].sort()).toEqual(
      [
        'CHOWN',
        'DAC_OVERRIDE',
        'DAC_READ_SEARCH',
        'FOWNER',
        'FSETID',
        'KILL',
        'SETGID',
        'SETUID',
        'NET_BIND_SERVICE',
        'SYS_CHROOT',
        'SYS_PTRACE',
        'SYS_TTY_CONFIG',
        'LEASE',
        'SETFCAP',
        'AUDIT_WRITE',
      ].sort(),
    );
  });

  it('secure removes everything reaching outside the guest, newer caps included', () => {
    const s = capSet(DEFAULT_CAP_SPEC);
    for (const c of [
      'SYS_ADMIN',
      'SYS_MODULE',
      'SYS_RAWIO',
      'SYS_TIME',
      'SYS_BOOT',
      'MKNOD',
      'NET_ADMIN',
      'NET_RAW',
      'SETPCAP',
      'SYS_RESOURCE',
      'SYS_NICE',
      'BPF',
      'PERFMON',
      'CHECKPOINT_RESTORE',
      'SYSLOG',
      'WAKE_ALARM',
      'BLOCK_SUSPEND',
      'MAC_ADMIN',
      'MAC_OVERRIDE',
      'AUDIT_READ',
      'AUDIT_CONTROL',
    ]) {
      expect(s.has(c), c).toBe(false);
    }
  });

  it('every removed capability has a reason', () => {
    for (const c of CAP_NAMES) {
      if (!PROFILE_CAPS.secure.includes(c)) expect(REMOVED_REASONS[c], c).toBeTruthy();
    }
    for (const c of Object.keys(REMOVED_REASONS)) expect(PROFILE_CAPS.secure).not.toContain(c);
    expect(removedCaps(DEFAULT_CAP_SPEC)).toHaveLength(41 - 15);
    expect(removedCaps({ profile: 'strict', add: [], drop: [] }).find((r) => r.name === 'SYS_PTRACE')?.reason).toBe(
      STRICT_REASONS.SYS_PTRACE,
    );
  });

  it('strict is secure minus SYS_PTRACE, SYS_CHROOT, SETFCAP', () => {
    const st = capSet({ profile: 'strict', add: [], drop: [] });
    expect(st.size).toBe(12);
    for (const c of ['SYS_PTRACE', 'SYS_CHROOT', 'SETFCAP']) expect(st.has(c)).toBe(false);
    expect(st.has('CHOWN')).toBe(true);
  });

  it('privileged is every capability', () => {
    expect(capSet({ profile: 'privileged', add: [], drop: [] }).size).toBe(41);
    expect(capMask({ profile: 'privileged', add: [], drop: [] })).toBe((1n << 41n) - 1n);
    expect(formatCapHex(capMask({ profile: 'privileged', add: [], drop: [] }))).toBe('000001ffffffffff');
  });

  it('add and drop; drop wins', () => {
    const s = capSet({ profile: 'secure', add: ['NET_RAW', 'cap_sys_nice'], drop: ['SYS_PTRACE'] });
    expect(s.has('NET_RAW')).toBe(true);
    expect(s.has('SYS_NICE')).toBe(true);
    expect(s.has('SYS_PTRACE')).toBe(false);
    expect(capSet({ profile: 'secure', add: ['NET_RAW'], drop: ['NET_RAW'] }).has('NET_RAW')).toBe(false);
    expect(() => capSet({ profile: 'secure', add: ['WARP'], drop: [] })).toThrow(/unknown capability/);
  });

  it('makeCapSpec normalises CLI values', () => {
    expect(makeCapSpec('STRICT', ['cap_net_raw', 'NET_RAW'], ['chown'])).toEqual({ profile: 'strict', add: ['NET_RAW'], drop: ['CHOWN'] });
    expect(() => makeCapSpec('root')).toThrow(/secure, strict, privileged/);
  });
});

describe('masks', () => {
  it('secure mask is what the kernel prints for those bits', () => {
    // bits 0-7, 10, 18, 19, 26, 28, 29, 31
    const m = capMask(DEFAULT_CAP_SPEC);
    expect(m).toBe(0xb40c04ffn);
    expect(formatCapHex(m)).toBe('00000000b40c04ff');
    expect(formatCapHex(capMask({ profile: 'strict', add: [], drop: [] }))).toBe('00000000340004ff');
  });

  it('round-trips names through masks', () => {
    const names = maskToNames(capMask(DEFAULT_CAP_SPEC));
    expect(names[0]).toBe('CHOWN');
    expect(namesToMask(names)).toBe(capMask(DEFAULT_CAP_SPEC));
    expect(maskToNames(0n)).toEqual([]);
    expect(maskToNames(1n << 45n)).toEqual(['CAP_45']);
  });

  it('decodes /proc/PID/status lines', () => {
    expect(parseCapHex('000001ffffffffff')).toBe((1n << 41n) - 1n);
    expect(parseCapHex('CapBnd:\t00000000a80425fb')).toBe(0xa80425fbn);
    expect(maskToNames(parseCapHex('00000000a80425fb'))).toEqual(
      // docker's default set
      [
        'CHOWN',
        'DAC_OVERRIDE',
        'FOWNER',
        'FSETID',
        'KILL',
        'SETGID',
        'SETUID',
        'SETPCAP',
        'NET_BIND_SERVICE',
        'NET_RAW',
        'SYS_CHROOT',
        'MKNOD',
        'AUDIT_WRITE',
        'SETFCAP',
      ],
    );
    expect(() => parseCapHex('zz')).toThrow(/not a capability mask/);
    expect(() => parseCapHex('11112222333344445')).toThrow(/not a capability mask/);
    const st = parseProcStatusCaps(
      'Name:\tsh\nCapInh:\t0000000000000000\nCapPrm:\t00000000b40c04ff\nCapEff:\t00000000b40c04ff\nCapBnd:\t00000000b40c04ff\nCapAmb:\t0000000000000000\n',
    );
    expect(st.CapBnd).toBe(capMask(DEFAULT_CAP_SPEC));
    expect(st.CapInh).toBe(0n);
    expect(() => parseProcStatusCaps('Name:\tsh\n')).toThrow(/CapInh/);
  });
});

describe('validateCapSpec', () => {
  it('accepts a good spec and normalises names', () => {
    expect(validateCapSpec({ profile: 'secure', add: ['cap_net_raw'], drop: [] })).toEqual({
      profile: 'secure',
      add: ['NET_RAW'],
      drop: [],
    });
    expect(validateCapSpec({ profile: 'strict' })).toEqual({ profile: 'strict', add: [], drop: [] });
    expect(validateCapSpec(undefined)).toEqual(DEFAULT_CAP_SPEC);
  });
  it('rejects bad specs clearly', () => {
    expect(() => validateCapSpec('secure')).toThrow(/must be an object/);
    expect(() => validateCapSpec({ profile: 'root' })).toThrow(/unknown capability profile 'root'/);
    expect(() => validateCapSpec({})).toThrow(/caps.profile/);
    expect(() => validateCapSpec({ profile: 'secure', add: 'NET_RAW' })).toThrow(/caps.add/);
    expect(() => validateCapSpec({ profile: 'secure', drop: [1] })).toThrow(/caps.drop/);
    expect(() => validateCapSpec({ profile: 'secure', add: ['FLY'] })).toThrow(/unknown capability 'FLY'/);
    expect(() => validateCapSpec({ profile: 'secure', extra: 1 })).toThrow(/unknown field 'extra'/);
  });
});

describe('context capabilities', () => {
  it('parses names', () => {
    expect(parseCcap('set_utsname')).toBe('SET_UTSNAME');
    expect(parseCcap('VXC_RAW_ICMP')).toBe('RAW_ICMP');
    expect(() => parseCcap('TELEPORT')).toThrow(/SET_UTSNAME, RAW_ICMP/);
  });
  it('offers only those with a safe mapping', () => {
    expect(validateCcaps(['raw_icmp', 'SET_UTSNAME', 'RAW_ICMP'])).toEqual(['RAW_ICMP', 'SET_UTSNAME']);
    expect(validateCcaps(undefined)).toEqual([]);
    expect(() => validateCcaps(['AUDIT_CONTROL'])).toThrow(/no safe mapping/);
    expect(() => validateCcaps('RAW_ICMP')).toThrow(/must be a list/);
    expect(ccapInfo('raw_icmp').needsNetns).toBe(true);
    for (const c of CCAPS) expect(c.how.length).toBeGreaterThan(20);
  });
});

describe('changing a spec (paene config)', () => {
  it('the latest word wins; reset forgets earlier adds and drops; a profile alone keeps them', () => {
    const cur = { profile: 'secure' as const, add: ['NET_RAW'], drop: ['SYS_PTRACE'] };
    expect(changeCapSpec(cur, { add: ['sys_ptrace'], drop: [], reset: false })).toEqual({
      profile: 'secure',
      add: ['NET_RAW', 'SYS_PTRACE'],
      drop: [],
    });
    expect(changeCapSpec(cur, { add: [], drop: ['CAP_NET_RAW'], reset: false })).toEqual({
      profile: 'secure',
      add: [],
      drop: ['SYS_PTRACE', 'NET_RAW'],
    });
    expect(changeCapSpec(cur, { profile: 'strict', add: [], drop: [], reset: true })).toEqual({ profile: 'strict', add: [], drop: [] });
    expect(changeCapSpec(cur, { profile: 'strict', add: [], drop: [], reset: false })).toEqual({
      profile: 'strict',
      add: ['NET_RAW'],
      drop: ['SYS_PTRACE'],
    });
    expect(() => changeCapSpec(cur, { profile: 'root', add: [], drop: [], reset: false })).toThrow(/unknown capability profile/);
    expect(() => changeCapSpec(cur, { add: ['FLY'], drop: [], reset: false })).toThrow(PaeneError);
  });
  it('decodes /proc/PID/status', () => {
    const d = decodeStatus(
      'CapInh:\t0000000000000000\nCapPrm:\t0000000000000400\nCapEff:\t0000000000000400\nCapBnd:\t0000000000000400\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n',
    );
    expect(d.sets.CapBnd.names).toEqual(['NET_BIND_SERVICE']);
    expect(d.seccomp).toBe('2 (filter, 1 filter(s))');
  });
});
