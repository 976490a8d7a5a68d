import { describe, expect, it } from 'vitest';
import { compileOciSeccomp, type OciSeccomp } from '../../src/seccomp/oci-profile.js';
import {
  AUDIT_ARCH_I386,
  AUDIT_ARCH_X86_64,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  X32_SYSCALL_BIT,
  checkFilter,
  runFilter,
} from '../../src/seccomp/filter.js';
import { X86_64_SYSCALLS as NR } from '../../src/seccomp/syscalls-x86_64.js';

const run = (prog: Buffer, name: string, args: (number | bigint)[] = [], arch = AUDIT_ARCH_X86_64) =>
  runFilter(prog, { nr: NR[name] as number, arch, args });

describe('OCI seccomp profiles compiled by paene', () => {
  const allowList: OciSeccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 38,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
    syscalls: [
      { names: ['read', 'write', 'no_such_call_anywhere'], action: 'SCMP_ACT_ALLOW' },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }] },
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
    ],
  };
  const prog = compileOciSeccomp(allowList);

  it('is a program the kernel would accept', () => {
    expect(() => checkFilter(prog)).not.toThrow();
  });
  it('allows what is listed, fails the rest with defaultErrnoRet, and a rule errno with its own', () => {
    expect(run(prog, 'read')).toBe(SECCOMP_RET_ALLOW);
    expect(run(prog, 'write')).toBe(SECCOMP_RET_ALLOW);
    expect(run(prog, 'openat')).toBe((SECCOMP_RET_ERRNO | 38) >>> 0);
    expect(run(prog, 'mkdir')).toBe((SECCOMP_RET_ERRNO | 13) >>> 0);
  });
  it('compares 64-bit arguments: equal in both halves only', () => {
    expect(run(prog, 'personality', [8])).toBe(SECCOMP_RET_ALLOW);
    expect(run(prog, 'personality', [0xffffffff])).toBe(SECCOMP_RET_ALLOW);
    expect(run(prog, 'personality', [0x1_0000_0008n])).toBe((SECCOMP_RET_ERRNO | 38) >>> 0);
    expect(run(prog, 'personality', [9])).toBe((SECCOMP_RET_ERRNO | 38) >>> 0);
  });
  it('MASKED_EQ: clone without namespace flags passes, with CLONE_NEWUSER does not', () => {
    expect(run(prog, 'clone', [0x11])).toBe(SECCOMP_RET_ALLOW);
    expect(run(prog, 'clone', [0x10000000 | 0x11])).toBe((SECCOMP_RET_ERRNO | 38) >>> 0);
  });
  it('other architectures and x32 calls get the default action, never the x86_64 rules', () => {
    expect(run(prog, 'read', [], AUDIT_ARCH_I386)).toBe((SECCOMP_RET_ERRNO | 38) >>> 0);
    expect(runFilter(prog, { nr: (NR.read as number) | X32_SYSCALL_BIT, arch: AUDIT_ARCH_X86_64 })).toBe((SECCOMP_RET_ERRNO | 38) >>> 0);
  });
  it('an allow-by-default profile kills other architectures instead of letting them past', () => {
    const p = compileOciSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] });
    expect(run(p, 'mount')).toBe((SECCOMP_RET_ERRNO | 1) >>> 0);
    expect(run(p, 'read')).toBe(SECCOMP_RET_ALLOW);
    expect(run(p, 'read', [], AUDIT_ARCH_I386)).toBe(SECCOMP_RET_KILL_PROCESS);
  });
  it.each([
    [
      'SCMP_CMP_NE',
      5,
      [
        [5, false],
        [6, true],
        [0x1_0000_0005n, true],
      ],
    ],
    [
      'SCMP_CMP_GT',
      5,
      [
        [5, false],
        [6, true],
        [0x1_0000_0000n, true],
        [4, false],
      ],
    ],
    [
      'SCMP_CMP_GE',
      5,
      [
        [5, true],
        [6, true],
        [4, false],
      ],
    ],
    [
      'SCMP_CMP_LT',
      5,
      [
        [5, false],
        [4, true],
        [0x1_0000_0000n, false],
      ],
    ],
    [
      'SCMP_CMP_LE',
      5,
      [
        [5, true],
        [4, true],
        [6, false],
      ],
    ],
  ] as [string, number, [number | bigint, boolean][]][])('%s', (op, value, cases) => {
    const p = compileOciSeccomp({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value, op }] }],
    });
    for (const [arg, allowed] of cases) expect(run(p, 'dup', [0, arg]) === SECCOMP_RET_ALLOW, `${op} ${arg}`).toBe(allowed);
  });
  it('refuses what it cannot honour, by name', () => {
    expect(() => compileOciSeccomp({ defaultAction: 'SCMP_ACT_NOTIFY' })).toThrow(/SCMP_ACT_NOTIFY/);
    expect(() => compileOciSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/x' })).toThrow(/listenerPath/);
    expect(() => compileOciSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_AARCH64'] })).toThrow(/AARCH64/);
    expect(() => compileOciSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG'] })).toThrow(/FLAG_LOG/);
    expect(() =>
      compileOciSeccomp({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ALLOW', args: [{ index: 7, value: 0, op: 'SCMP_CMP_EQ' }] }],
      }),
    ).toThrow(/index/);
    expect(() =>
      compileOciSeccomp({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['dup'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_BOGUS' }] }],
      }),
    ).toThrow(/BOGUS/);
  });
});
