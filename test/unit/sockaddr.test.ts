// The shared-network wall, run through the eBPF interpreter: every rule of
// src/net/sockaddr.ts on the same bytes the kernel loads, plus the
// assembler and the interpreter themselves. test/kernel/sockaddr.test.ts
// checks the same programs on the real kernel.

import { describe, expect, it } from 'vitest';
import { type SockAddrCall, runEbpf, runSockAddr } from '../ebpf-run.js';
import { Asm, decode, encode, R0, R1, R2, R10 } from '../../src/bpf/ebpf.js';
import { isPaeneError } from '../../src/model/errors.js';
import {
  ATTACH_TYPE,
  buildSockAddr,
  buildSockAddrPrograms,
  hostRefusals,
  LOCAL,
  localSize,
  formatIPv6,
  parseIPv4,
  parseIPv6,
  SOCK_ADDR_HOOKS,
  type SockAddrHook,
  type SockAddrPolicy,
} from '../../src/net/sockaddr.js';

/** A v4-only context in a loopback pool, as paene's shared mode makes them. */
const V4: SockAddrPolicy = {
  v4: ['127.77.1.2', '127.77.1.5'],
  v6: [],
  peerNets4: ['127.77.0.0/16'],
  hostDeny4: ['127.88.0.1', '192.0.2.10', '127.77.0.1'],
  hostDeny6: ['2001:db8::10'],
};
/** A context in a routable egress pool (10.77.0.0/16, NAT out), the 127.x pool its neighbours too; one host address published. */
const EG: SockAddrPolicy = {
  v4: ['10.77.0.2'],
  v6: [],
  peerNets4: ['127.77.0.0/16', '10.77.0.0/16'],
  hostDeny4: ['192.0.2.10', '10.77.0.1'],
  hostDeny6: [],
  hostAllow4: ['192.0.2.20'],
};
/** Dual stack. */
const DUAL: SockAddrPolicy = { ...V4, v4: ['127.77.1.2'], v6: ['fd00::2', 'fd00::3'] };
/** IPv6 only. */
const V6: SockAddrPolicy = {
  v4: [],
  v6: ['fd00::2'],
  peerNets4: ['127.77.0.0/16'],
  hostDeny4: ['192.0.2.10'],
  hostDeny6: ['2001:db8::10'],
};

/** Runs a policy's program with its storage value in the cgroup storage, as a started context has it. */
function run(p: SockAddrPolicy, hook: SockAddrHook, call: SockAddrCall | string) {
  const w = buildSockAddr(p);
  const maps = { local: w.storage, addrSet4: w.addrSet4, addrSet6: w.addrSet6 };
  return runSockAddr(hook, w.progs[hook], { ...maps, ...(typeof call === 'string' ? { ip: call, port: 4242 } : call) });
}
/** 'allow IP' when allowed (with the address after rewriting), 'deny' otherwise. */
function verdict(p: SockAddrPolicy, hook: SockAddrHook, ip: string): string {
  const r = run(p, hook, ip);
  return r.ret === 1 ? `allow ${r.ip}` : 'deny';
}

function invalid(p: unknown, msg: RegExp) {
  let err: unknown;
  try {
    buildSockAddrPrograms(p as SockAddrPolicy);
  } catch (e) {
    err = e;
  }
  expect(isPaeneError(err, 'invalid-argument'), String(err)).toBe(true);
  expect((err as Error).message).toMatch(msg);
}

describe('eBPF assembler', () => {
  it('encodes instructions little-endian, ld_imm64 in two slots', () => {
    const a = new Asm();
    a.mov64(R0, { imm: 1 }).ldImm64(R2, 0x1122334455667788n).exit();
    expect(a.toBuffer().toString('hex')).toBe(['b700000001000000', '1802000088776655', '0000000044332211', '9500000000000000'].join(''));
    expect(encode(decode(a.toBuffer()))).toEqual(a.toBuffer());
  });

  it('resolves labels to slot offsets (ld_imm64 counts twice) and writes high immediates as s32', () => {
    const a = new Asm();
    a.jmp32('jeq', R1, { imm: 0xffff0000 }, 'out').ldImm64(R0, 5n).label('out').ret(0);
    const insns = a.assemble();
    expect(insns[0]).toMatchObject({ code: 0x16, dst: 1, off: 2, imm: -65536 });
  });

  it('drops code no path reaches (the verifier rejects it) and refuses backward jumps and missing exits', () => {
    const a = new Asm();
    a.ja('end').mov64(R0, { imm: 7 }).exit().label('end').ret(1);
    expect(decode(a.toBuffer())).toHaveLength(3); // ja, mov, exit
    expect(decode(a.toBuffer())[0].off).toBe(0);
    const back = new Asm();
    back.label('top').ja('top');
    expect(() => back.assemble()).toThrow(/backward/);
    const open = new Asm();
    open.mov64(R0, { imm: 1 });
    expect(() => open.assemble()).toThrow(/falls off/);
    expect(() => new Asm().ja('nowhere').assemble()).toThrow(/not defined/);
  });
});

describe('eBPF interpreter', () => {
  const ctx = () => Buffer.alloc(8);
  it('runs ALU32 with zero extension and JMP32 on the low half', () => {
    const a = new Asm();
    a.ldImm64(R2, 0xffffffff_00000005n).alu32('add', R2, { imm: 1 }).jmp32('jne', R2, { imm: 6 }, 'no');
    a.mov64(R0, R2).exit().label('no').ret(99);
    expect(runEbpf(a.toBuffer(), { ctx: ctx() })).toBe(6n);
  });

  it('is strict like the verifier: unset registers, unset stack, out-of-bounds memory, r10 writes', () => {
    const unsetReg = new Asm().mov64(R0, R2).exit();
    expect(() => runEbpf(unsetReg.toBuffer(), { ctx: ctx() })).toThrow(/r2 is read before/);
    const unsetStack = new Asm().ldx(4, R0, R10, -8).exit();
    expect(() => runEbpf(unsetStack.toBuffer(), { ctx: ctx() })).toThrow(/stack byte/);
    const oob = new Asm().ldx(4, R0, R1, 8).exit();
    expect(() => runEbpf(oob.toBuffer(), { ctx: ctx() })).toThrow(/outside/);
    const fp = new Asm().mov64(R10, { imm: 0 }).ret(0);
    expect(() => runEbpf(fp.toBuffer(), { ctx: ctx() })).toThrow(/read-only/);
  });

  it('applies the bpf_sock_addr access rules of each hook', () => {
    const prog = (f: (a: Asm) => void) => {
      const a = new Asm();
      f(a);
      return a.ret(1).toBuffer();
    };
    // user_ip6 does not exist for bind4, msg_src_ip4 only for sendmsg4, no immediate stores, no family writes
    expect(() =>
      runSockAddr(
        'bind4',
        prog((a) => a.ldx(4, R2, R1, 8)),
        { ip: '1.2.3.4' },
      ),
    ).toThrow(/user_ip6/);
    expect(() =>
      runSockAddr(
        'connect4',
        prog((a) => a.ldx(4, R2, R1, 40)),
        { ip: '1.2.3.4' },
      ),
    ).toThrow(/msg_src_ip4/);
    expect(() =>
      runSockAddr(
        'connect4',
        prog((a) => a.st(4, R1, 4, 1)),
        { ip: '1.2.3.4' },
      ),
    ).toThrow(/BPF_ST/);
    expect(() =>
      runSockAddr(
        'connect4',
        prog((a) => a.mov64(R2, { imm: 1 }).stx(4, R1, 0, R2)),
        { ip: '1.2.3.4' },
      ),
    ).toThrow(/read-only/);
    expect(() =>
      runSockAddr(
        'connect4',
        prog((a) => a.mov64(R2, { imm: 1 }).stx(2, R1, 4, R2)),
        { ip: '1.2.3.4' },
      ),
    ).toThrow(/4 bytes/);
    // bpf_bind only for connect; recvmsg must return 1
    expect(() =>
      runSockAddr(
        'sendmsg4',
        prog((a) => a.call(64)),
        { ip: '1.2.3.4' },
      ),
    ).toThrow(/unknown helper 64/);
    expect(() => runSockAddr('recvmsg4', new Asm().ret(0).toBuffer(), { ip: '1.2.3.4' })).toThrow(/allows 1\.\.1/);
  });
});

describe('addresses', () => {
  it('parses and formats IPv4 and IPv6', () => {
    expect(parseIPv4('127.0.0.1')).toEqual(Buffer.from([127, 0, 0, 1]));
    for (const bad of ['127.0.0', '127.0.0.256', '127.0.0.01', ' 127.0.0.1', '1.2.3.4/8']) expect(parseIPv4(bad)).toBeUndefined();
    const round = (s: string) => formatIPv6(parseIPv6(s) as Buffer);
    expect(round('::')).toBe('::');
    expect(round('::1')).toBe('::1');
    expect(round('fd00:0:0:0:0:0:0:2')).toBe('fd00::2');
    expect(round('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(round('::FFFF:127.0.0.1')).toBe('::ffff:127.0.0.1');
    expect(round('1:2:3:4:5:6:7:8')).toBe('1:2:3:4:5:6:7:8');
    for (const bad of ['1::2::3', ':::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', 'fd00::g', '12345::', 'fe80::1%eth0', '1.2.3.4::'])
      expect(parseIPv6(bad)).toBeUndefined();
  });
});

describe('bind4', () => {
  it('rewrites the wildcard and the host loopback to the primary address, keeping the port', () => {
    expect(run(V4, 'bind4', { ip: '0.0.0.0', port: 80 })).toMatchObject({ ret: 1, ip: '127.77.1.2', port: 80 });
    expect(run(V4, 'bind4', { ip: '127.0.0.1', port: 8080 })).toMatchObject({ ret: 1, ip: '127.77.1.2', port: 8080 });
    expect(verdict(V4, 'bind4', '127.1.2.3')).toBe('allow 127.77.1.2');
  });
  it('allows its own addresses as they are', () => {
    expect(verdict(V4, 'bind4', '127.77.1.2')).toBe('allow 127.77.1.2');
    expect(verdict(V4, 'bind4', '127.77.1.5')).toBe('allow 127.77.1.5');
  });
  it("denies another context's address, the host's addresses and the world", () => {
    for (const ip of ['127.77.1.3', '127.77.0.1', '192.0.2.10', '10.0.0.1', '8.8.8.8', '255.255.255.255'])
      expect(verdict(V4, 'bind4', ip)).toBe('deny');
  });
  it('denies every bind when the context has no IPv4 address', () => {
    for (const ip of ['0.0.0.0', '127.0.0.1', '127.77.1.2']) expect(verdict(V6, 'bind4', ip)).toBe('deny');
  });
});

describe('bind6', () => {
  it(':: and ::1 go to the primary v6, or the v4-mapped primary v4 without one', () => {
    expect(verdict(DUAL, 'bind6', '::')).toBe('allow fd00::2');
    expect(verdict(DUAL, 'bind6', '::1')).toBe('allow fd00::2');
    expect(verdict(V4, 'bind6', '::')).toBe('allow ::ffff:127.77.1.2');
    expect(verdict(V4, 'bind6', '::1')).toBe('allow ::ffff:127.77.1.2');
    expect(run(V6, 'bind6', { ip: '::', port: 443 })).toMatchObject({ ret: 1, ip: 'fd00::2', port: 443 });
  });
  it('v4-mapped addresses get the bind4 rules: the dual-stack bypass is closed', () => {
    expect(verdict(V4, 'bind6', '::ffff:127.0.0.1')).toBe('allow ::ffff:127.77.1.2');
    expect(verdict(V4, 'bind6', '::ffff:0.0.0.0')).toBe('allow ::ffff:127.77.1.2');
    expect(verdict(V4, 'bind6', '::ffff:127.77.1.5')).toBe('allow ::ffff:127.77.1.5');
    expect(verdict(V4, 'bind6', '::ffff:127.77.1.3')).toBe('deny');
    expect(verdict(V4, 'bind6', '::ffff:192.0.2.10')).toBe('deny');
    expect(verdict(V6, 'bind6', '::ffff:127.0.0.1')).toBe('deny');
  });
  it('own v6 addresses are allowed, anything else denied', () => {
    expect(verdict(DUAL, 'bind6', 'fd00::3')).toBe('allow fd00::3');
    for (const ip of ['fd00::9', '2001:db8::10', 'fe80::1', '::2', '::ffff:0:1']) expect(verdict(DUAL, 'bind6', ip)).toBe('deny');
  });
});

describe('connect4 and sendmsg4', () => {
  it("redirects the host's loopback (and 0.0.0.0, 'this host') to the primary address, port kept", () => {
    for (const hook of ['connect4', 'sendmsg4'] as const) {
      expect(run(V4, hook, { ip: '127.0.0.1', port: 5432 })).toMatchObject({ ret: 1, ip: '127.77.1.2', port: 5432 });
      expect(verdict(V4, hook, '127.9.9.9')).toBe('allow 127.77.1.2');
      expect(verdict(V4, hook, '0.0.0.0')).toBe('allow 127.77.1.2');
    }
  });
  it('lets own addresses and neighbours in peerNets4 through as they are; the world too from a routable primary', () => {
    for (const hook of ['connect4', 'sendmsg4'] as const) {
      for (const ip of ['127.77.1.5', '127.77.1.3', '127.77.200.1']) expect(verdict(V4, hook, ip)).toBe(`allow ${ip}`);
      for (const ip of ['10.77.0.2', '10.77.9.9', '127.77.1.3', '192.0.2.20', '8.8.8.8', '10.0.0.1', '203.0.113.10'])
        expect(verdict(EG, hook, ip)).toBe(`allow ${ip}`);
      for (const ip of ['192.0.2.10', '10.77.0.1']) expect(verdict(EG, hook, ip)).toBe('deny');
      expect(verdict(EG, hook, '127.0.0.1')).toBe('allow 10.77.0.2');
    }
  });
  it('denyNets4 (the private subnets on this stack) are refused whole, from any primary: a private context only through its published port', () => {
    const p: SockAddrPolicy = { ...EG, denyNets4: ['10.88.0.0/16', '10.89.0.0/16'] };
    for (const hook of ['connect4', 'sendmsg4'] as const) {
      for (const ip of ['10.88.0.2', '10.88.255.254', '10.89.0.1']) expect(verdict(p, hook, ip)).toBe('deny');
      for (const ip of ['10.87.255.255', '10.90.0.1', '192.0.2.20', '8.8.8.8']) expect(verdict(p, hook, ip)).toBe(`allow ${ip}`);
    }
    expect(verdict({ ...p, v6: ['fd00::2'] }, 'connect6', '::ffff:10.88.0.2')).toBe('deny');
    invalid({ ...p, denyNets4: ['10.88.0.1/16'] }, /network to deny: '10\.88\.0\.1\/16' has host bits set/);
  });
  it('a loopback primary (the 127.x pool) never goes beyond the host: EPERM where the kernel would give EINVAL', () => {
    const pub: SockAddrPolicy = { ...V4, peerNets4: ['127.77.0.0/16', '10.77.0.0/16'], hostAllow4: ['192.0.2.20'] };
    for (const hook of ['connect4', 'sendmsg4'] as const) {
      for (const ip of ['8.8.8.8', '10.0.0.1', '203.0.113.10', '192.0.2.21', '255.255.255.255', '224.0.0.1'])
        expect(verdict(pub, hook, ip)).toBe('deny');
      // what is on the host stays reachable: a published host address, a neighbour in a routable pool, its own
      for (const ip of ['192.0.2.20', '10.77.0.5']) expect(verdict(pub, hook, ip)).toBe(`allow ${ip}`);
      expect(verdict({ ...pub, v4: ['127.77.1.2', '192.0.2.30'] }, hook, '192.0.2.30')).toBe('allow 192.0.2.30');
      // a primary outside 127/8 (an address of a host interface) goes out as before, whatever its other addresses
      expect(verdict({ ...pub, v4: ['192.0.2.30', '127.77.1.2'] }, hook, '8.8.8.8')).toBe('allow 8.8.8.8');
    }
    expect(run(pub, 'connect4', '8.8.8.8').binds).toEqual([]);
    // the mapped form of a dual-stack socket gets the same answer
    expect(verdict({ ...pub, v6: ['fd00::2'] }, 'connect6', '::ffff:8.8.8.8')).toBe('deny');
    expect(verdict({ ...pub, v6: ['fd00::2'] }, 'connect6', '::ffff:192.0.2.20')).toBe('allow ::ffff:192.0.2.20');
  });
  it('refuses the host addresses in hostDeny4, before the loopback and peer rules', () => {
    for (const hook of ['connect4', 'sendmsg4'] as const) {
      for (const ip of ['127.88.0.1', '192.0.2.10', '127.77.0.1']) expect(verdict(V4, hook, ip)).toBe('deny');
    }
  });
  it('connect4 forces the source with bpf_bind(primary, port 0), whatever bpf_bind answers', () => {
    expect(run(EG, 'connect4', '8.8.8.8').binds).toEqual(['10.77.0.2:0']);
    expect(run(V4, 'connect4', '127.77.1.3').binds).toEqual(['127.77.1.2:0']);
    expect(run(V4, 'connect4', '127.0.0.1').binds).toEqual(['127.77.1.2:0']);
    expect(run(V4, 'connect4', { ip: '127.77.1.3', port: 22, bindResult: -22 })).toMatchObject({ ret: 1, binds: ['127.77.1.2:0'] });
    expect(run(V4, 'connect4', '192.0.2.10').binds).toEqual([]);
  });
  it('sendmsg4 sets msg_src_ip4 to the primary unless it already is an own address', () => {
    expect(run(V4, 'sendmsg4', { ip: '127.77.1.3', port: 53, msgSrc: '0.0.0.0', type: 'dgram' })).toMatchObject({
      ret: 1,
      msgSrc: '127.77.1.2',
      binds: [],
    });
    expect(run(V4, 'sendmsg4', { ip: '127.77.1.3', port: 53, msgSrc: '127.77.1.5' }).msgSrc).toBe('127.77.1.5');
    expect(run(V4, 'sendmsg4', { ip: '127.77.1.3', port: 53, msgSrc: '10.0.0.1' }).msgSrc).toBe('127.77.1.2');
    expect(run(EG, 'sendmsg4', { ip: '8.8.8.8', port: 53, msgSrc: '0.0.0.0', type: 'dgram' })).toMatchObject({
      ret: 1,
      msgSrc: '10.77.0.2',
    });
  });
  it('without an IPv4 address: loopback refused (nothing to redirect to), peers and the world unbound', () => {
    expect(verdict(V6, 'connect4', '127.0.0.1')).toBe('deny');
    expect(verdict(V6, 'connect4', '0.0.0.0')).toBe('deny');
    expect(verdict(V6, 'connect4', '192.0.2.10')).toBe('deny');
    expect(run(V6, 'connect4', '127.77.1.3')).toMatchObject({ ret: 1, binds: [] });
    expect(run(V6, 'sendmsg4', { ip: '8.8.8.8', msgSrc: '0.0.0.0' })).toMatchObject({ ret: 1, msgSrc: '0.0.0.0' });
  });
});

describe('connect6 and sendmsg6', () => {
  it('v4-mapped destinations get the v4 rules, results stay mapped, the source is the mapped primary v4', () => {
    expect(run(DUAL, 'connect6', { ip: '::ffff:127.0.0.1', port: 80 })).toMatchObject({
      ret: 1,
      ip: '::ffff:127.77.1.2',
      port: 80,
      binds: ['[::ffff:127.77.1.2]:0'],
    });
    expect(verdict(DUAL, 'connect6', '::ffff:127.77.1.3')).toBe('allow ::ffff:127.77.1.3');
    expect(verdict(DUAL, 'connect6', '::ffff:127.88.0.1')).toBe('deny');
    expect(verdict(DUAL, 'connect6', '::ffff:192.0.2.10')).toBe('deny');
    expect(verdict(V4, 'connect6', '::ffff:127.0.0.1')).toBe('allow ::ffff:127.77.1.2');
    expect(verdict(V6, 'connect6', '::ffff:127.0.0.1')).toBe('deny');
    expect(verdict(DUAL, 'sendmsg6', '::ffff:127.88.0.1')).toBe('deny');
  });
  it('::1 (and ::) go to the primary v6, or are refused without one', () => {
    for (const hook of ['connect6', 'sendmsg6'] as const) {
      expect(verdict(DUAL, hook, '::1')).toBe('allow fd00::2');
      expect(verdict(DUAL, hook, '::')).toBe('allow fd00::2');
      expect(verdict(V4, hook, '::1')).toBe('deny');
    }
  });
  it('hostDeny6 is refused, the rest allowed', () => {
    for (const hook of ['connect6', 'sendmsg6'] as const) {
      expect(verdict(DUAL, hook, '2001:db8::10')).toBe('deny');
      expect(verdict(DUAL, hook, '2001:db8::99')).toBe('allow 2001:db8::99');
      expect(verdict(V4, hook, '2001:db8::99')).toBe('allow 2001:db8::99');
    }
  });
  it('connect6 binds the primary v6, and nothing when the context has none', () => {
    expect(run(DUAL, 'connect6', '2001:db8::99').binds).toEqual(['[fd00::2]:0']);
    expect(run(DUAL, 'connect6', '::1').binds).toEqual(['[fd00::2]:0']);
    expect(run(V4, 'connect6', '2001:db8::99').binds).toEqual([]);
  });
  it('sendmsg6 sets msg_src_ip6 to the primary v6 unless it is an own address', () => {
    expect(run(DUAL, 'sendmsg6', { ip: '2001:db8::99', port: 53, msgSrc: '::' }).msgSrc).toBe('fd00::2');
    expect(run(DUAL, 'sendmsg6', { ip: '2001:db8::99', port: 53, msgSrc: 'fd00::3' }).msgSrc).toBe('fd00::3');
    expect(run(V4, 'sendmsg6', { ip: '2001:db8::99', port: 53, msgSrc: '::' }).msgSrc).toBe('::');
  });
});

describe('recvmsg and getpeername', () => {
  it('show the primary address as the loopback, leave other peers alone, always return 1', () => {
    for (const hook of ['recvmsg4', 'getpeername4'] as const) {
      expect(run(V4, hook, { ip: '127.77.1.2', port: 9000 })).toMatchObject({ ret: 1, ip: '127.0.0.1', port: 9000 });
      expect(run(V4, hook, '127.77.1.5')).toMatchObject({ ret: 1, ip: '127.77.1.5' });
      expect(run(V4, hook, '8.8.8.8')).toMatchObject({ ret: 1, ip: '8.8.8.8' });
      expect(run(V6, hook, '127.77.1.2')).toMatchObject({ ret: 1, ip: '127.77.1.2' });
    }
    for (const hook of ['recvmsg6', 'getpeername6'] as const) {
      expect(run(DUAL, hook, 'fd00::2')).toMatchObject({ ret: 1, ip: '::1' });
      expect(run(DUAL, hook, '::ffff:127.77.1.2')).toMatchObject({ ret: 1, ip: '::ffff:127.0.0.1' });
      expect(run(DUAL, hook, 'fd00::3')).toMatchObject({ ret: 1, ip: 'fd00::3' });
      expect(run(V4, hook, '::ffff:127.77.1.3')).toMatchObject({ ret: 1, ip: '::ffff:127.77.1.3' });
    }
  });
});

describe('getsockname: the primary address shows as what the program asked for', () => {
  it('a socket bound to the wildcard or a host loopback address reads it back; one bound to its own address reads that', () => {
    for (const [asked, shown] of [
      ['0.0.0.0', '0.0.0.0'],
      ['127.0.0.1', '127.0.0.1'],
      ['127.9.9.9', '127.9.9.9'],
      ['127.77.1.2', '127.77.1.2'],
      ['127.77.1.5', '127.77.1.5'],
    ]) {
      const socket = {};
      const b = run(V4, 'bind4', { ip: asked, port: 80, socket });
      expect(b.ret).toBe(1);
      expect(run(V4, 'getsockname4', { ip: b.ip, port: 80, socket })).toMatchObject({ ret: 1, ip: shown, port: 80 });
    }
    // nothing recorded (bound before the wall, or a new map after a live change): the real address
    expect(run(V4, 'getsockname4', { ip: '127.77.1.2', socket: {} })).toMatchObject({ ret: 1, ip: '127.77.1.2' });
  });

  it('connected: the loopback when the peer is itself (its own 127.0.0.1), the real address otherwise', () => {
    expect(run(V4, 'getsockname4', { ip: '127.77.1.2', peer: '127.77.1.2' })).toMatchObject({ ip: '127.0.0.1' });
    expect(run(V4, 'getsockname4', { ip: '127.77.1.2', peer: '127.77.1.3' })).toMatchObject({ ip: '127.77.1.2' });
    expect(run(V4, 'getsockname4', { ip: '127.77.1.2', peer: '127.0.0.1' })).toMatchObject({ ip: '127.77.1.2' }); // a host client
    // a wildcard listener's recorded 0.0.0.0 does not hide where a connection on it really is
    const socket = {};
    run(V4, 'bind4', { ip: '0.0.0.0', socket });
    expect(run(V4, 'getsockname4', { ip: '127.77.1.2', peer: '8.8.8.8', socket })).toMatchObject({ ip: '127.77.1.2' });
  });

  it('IPv6: ::, ::1 and mapped requests read back; its own v6 or mapped v4 talking to itself reads the loopback', () => {
    for (const [p, asked, shown] of [
      [DUAL, '::', '::'],
      [DUAL, '::1', '::1'],
      [V4, '::', '::'],
      [DUAL, '::ffff:127.0.0.1', '::ffff:127.0.0.1'],
      [DUAL, 'fd00::2', 'fd00::2'],
    ] as const) {
      const socket = {};
      const b = run(p, 'bind6', { ip: asked, socket });
      expect(b.ret).toBe(1);
      expect(run(p, 'getsockname6', { ip: b.ip, socket })).toMatchObject({ ret: 1, ip: shown });
    }
    expect(run(DUAL, 'getsockname6', { ip: 'fd00::2', peer: 'fd00::2' })).toMatchObject({ ip: '::1' });
    expect(run(DUAL, 'getsockname6', { ip: '::ffff:127.77.1.2', peer: '::ffff:127.77.1.2' })).toMatchObject({ ip: '::ffff:127.0.0.1' });
    expect(run(DUAL, 'getsockname6', { ip: 'fd00::2', peer: 'fd00::9' })).toMatchObject({ ip: 'fd00::2' });
    expect(run(V6, 'getsockname6', { ip: 'fd00::3', socket: {} })).toMatchObject({ ip: 'fd00::3' });
  });
});

describe('UDP answers to a host client on the host loopback', () => {
  const S = 1_000_000_000n;
  it('recvmsg remembers the host client; sendmsg answers it as is, within 30 s, and only it', () => {
    const socket = {};
    expect(run(V4, 'recvmsg4', { ip: '127.0.0.1', port: 5000, socket, now: 10n * S })).toMatchObject({
      ret: 1,
      ip: '127.0.0.1',
      port: 5000,
    });
    expect(run(V4, 'sendmsg4', { ip: '127.0.0.1', port: 5000, socket, now: 20n * S, msgSrc: '0.0.0.0' })).toMatchObject({
      ret: 1,
      ip: '127.0.0.1',
      msgSrc: '127.77.1.2',
    });
    // another port or address of the host's loopback: redirected to its own, as always
    expect(run(V4, 'sendmsg4', { ip: '127.0.0.1', port: 5001, socket, now: 20n * S })).toMatchObject({ ip: '127.77.1.2' });
    expect(run(V4, 'sendmsg4', { ip: '127.0.0.2', port: 5000, socket, now: 20n * S })).toMatchObject({ ip: '127.77.1.2' });
    // after the window
    expect(run(V4, 'sendmsg4', { ip: '127.0.0.1', port: 5000, socket, now: 41n * S })).toMatchObject({ ip: '127.77.1.2' });
    // another socket never heard from it
    expect(run(V4, 'sendmsg4', { ip: '127.0.0.1', port: 5000, socket: {}, now: 20n * S })).toMatchObject({ ip: '127.77.1.2' });
  });

  it('only host loopback peers are remembered: its own, a neighbour, the world are not', () => {
    for (const ip of ['127.77.1.2', '127.77.1.5', '127.77.9.9', '8.8.8.8']) {
      const socket: { storage?: Buffer } = {};
      run(V4, 'recvmsg4', { ip, port: 5000, socket });
      expect(socket.storage).toBeUndefined();
    }
  });

  it('a dual-stack socket: a mapped host client is remembered by recvmsg6 and answered through sendmsg4', () => {
    const socket = {};
    expect(run(DUAL, 'recvmsg6', { ip: '::ffff:127.0.0.1', port: 5000, socket, now: S })).toMatchObject({ ret: 1, ip: '::ffff:127.0.0.1' });
    expect(run(DUAL, 'sendmsg4', { ip: '127.0.0.1', port: 5000, socket, now: 2n * S })).toMatchObject({ ret: 1, ip: '127.0.0.1' });
  });
});

describe('the cgroup storage: own addresses read at run time', () => {
  it('contexts of the same shape share the programs; only their storage values differ', () => {
    const a = buildSockAddr(V4);
    const b = buildSockAddr({ ...V4, v4: ['127.77.3.4', '127.77.3.9'] });
    for (const h of SOCK_ADDR_HOOKS) expect(b.progs[h].equals(a.progs[h])).toBe(true);
    expect(b.storage.equals(a.storage)).toBe(false);
    expect(a.storage.length).toBe(localSize(2, 0));
    expect(buildSockAddrPrograms(V4)).toBe(a.progs); // assembled once per process
    expect(verdict({ ...V4, v4: ['127.77.3.4', '127.77.3.9'] }, 'bind4', '0.0.0.0')).toBe('allow 127.77.3.4');
    expect(verdict({ ...V4, v4: ['127.77.3.4', '127.77.3.9'] }, 'bind4', '127.77.1.2')).toBe('deny'); // V4's address: a neighbour's now
    // another shape or another host list: other programs
    expect(buildSockAddr(DUAL).progs.bind4.equals(a.progs.bind4)).toBe(false);
    expect(buildSockAddr({ ...V4, hostDeny4: ['192.0.2.99'] }).progs.connect4.equals(a.progs.connect4)).toBe(false);
    expect(buildSockAddr({ ...V4, hostAllow4: ['192.0.2.98'] }).progs.connect4.equals(a.progs.connect4)).toBe(false);
    expect(buildSockAddr({ ...V4, denyNets4: ['10.88.0.0/16'] }).progs.connect4.equals(a.progs.connect4)).toBe(false);
  });

  it('a storage value not written yet (zeros) fails closed: bind, connect and sendmsg refused, the others unchanged', () => {
    for (const p of [V4, DUAL, V6]) {
      const w = buildSockAddr(p);
      const zero = Buffer.alloc(w.storage.length);
      const at = (hook: SockAddrHook, ip: string) =>
        runSockAddr(hook, w.progs[hook], { ip, port: 4242, local: zero, msgSrc: hook.startsWith('sendmsg') ? ip : undefined });
      for (const hook of ['bind6', 'connect6', 'sendmsg6'] as const) expect(at(hook, '::').ret).toBe(0);
      for (const hook of ['recvmsg6', 'getpeername6', 'getsockname6'] as const)
        expect(at(hook, 'fd00::2')).toMatchObject({ ret: 1, ip: 'fd00::2' });
      if (p.v4.length === 0) continue; // no v4 address: the v4 programs never read the storage
      for (const hook of ['bind4', 'connect4', 'sendmsg4'] as const) expect(at(hook, '127.0.0.1').ret).toBe(0);
      for (const hook of ['recvmsg4', 'getpeername4', 'getsockname4'] as const)
        expect(at(hook, '127.77.1.2')).toMatchObject({ ret: 1, ip: '127.77.1.2' });
    }
  });

  it('a value written for another shape is not trusted either', () => {
    const w = buildSockAddr(V4);
    const other = buildSockAddr({ ...V4, v4: ['127.77.1.2'] }).storage; // one address, not two
    const wide = Buffer.concat([other, Buffer.alloc(w.storage.length - other.length)]);
    expect(runSockAddr('bind4', w.progs.bind4, { ip: '0.0.0.0', local: wide }).ret).toBe(0);
    expect(runSockAddr('connect4', w.progs.connect4, { ip: '127.77.1.3', local: wide }).ret).toBe(0);
  });

  it('the storage value: the ready word with the counts, then the v4 and the v6 addresses in network order', () => {
    const s = buildSockAddr(DUAL).storage;
    expect(s.length).toBe(LOCAL.own + 4 + 2 * 16);
    expect(s.readUInt32LE(LOCAL.ready)).toBe(1 | (1 << 8) | (2 << 16));
    expect([...s.subarray(LOCAL.own, LOCAL.own + 4)]).toEqual([127, 77, 1, 2]);
    expect(formatIPv6(s.subarray(LOCAL.own + 4, LOCAL.own + 20))).toBe('fd00::2');
    expect(formatIPv6(s.subarray(LOCAL.own + 20, LOCAL.own + 36))).toBe('fd00::3');
  });

  it('a program that reads the storage needs it given, and reads within it', () => {
    const w = buildSockAddr(V4);
    expect(() => runSockAddr('bind4', w.progs.bind4, { ip: '0.0.0.0' })).toThrow(/cgroup storage/);
    expect(() => runSockAddr('bind4', w.progs.bind4, { ip: '127.77.1.9', local: w.storage.subarray(0, 8) })).toThrow(/outside/);
  });
});

describe('invariants over many addresses', () => {
  // A deterministic sweep: random addresses plus the edges, against what the wall promises.
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
  const v4s = ['0.0.0.0', '127.0.0.1', '127.77.0.0', '127.77.255.255', '127.88.0.1', '255.255.255.255', ...V4.v4, ...V4.hostDeny4];
  for (let i = 0; i < 300; i++)
    v4s.push(i % 2 ? `127.${rnd() % 256}.${rnd() % 256}.${rnd() % 256}` : `${rnd() % 256}.${rnd() % 256}.${rnd() % 256}.${rnd() % 256}`);
  const loopback = (ip: string) => ip.startsWith('127.');
  const inPool = (ip: string) => ip.startsWith('127.77.');

  it('bind4 only ever binds an own address; bind6 only an own or mapped own one', () => {
    for (const ip of v4s) {
      const r = run(V4, 'bind4', ip);
      if (r.ret === 1) expect(V4.v4).toContain(r.ip);
      const r6 = run(DUAL, 'bind6', `::ffff:${ip}`);
      if (r6.ret === 1) expect(r6.ip).toBe(`::ffff:${DUAL.v4[0]}`);
    }
  });

  it('connect4 never reaches hostDeny4, a host loopback address or (from 127.x) the world, and always binds the primary', () => {
    for (const ip of v4s) {
      const r = run(V4, 'connect4', ip);
      if (r.ret === 0) {
        expect(V4.hostDeny4.includes(ip) || !loopback(ip)).toBe(true);
        continue;
      }
      expect(loopback(r.ip)).toBe(true); // a 127.x source reaches nothing outside 127/8 here (no published address)
      expect(V4.hostDeny4).not.toContain(r.ip);
      if (loopback(r.ip)) expect(V4.v4.includes(r.ip) || inPool(r.ip)).toBe(true);
      expect(r.binds).toEqual(['127.77.1.2:0']);
      const m = run(DUAL, 'connect6', `::ffff:${ip}`);
      expect(m.ret === 1 ? m.ip : 'deny').toBe(`::ffff:${r.ip}`); // the mapped form gets the same answer
    }
  });
});

describe('a host with many addresses of its own', () => {
  // 64 IPv4 (an IP alias per vserver guest on eth0) and 64 IPv6 addresses, and link-local ones (a veth per container)
  const host4 = Array.from({ length: 64 }, (_, i) => `192.0.2.${i + 1}`);
  const host6 = Array.from({ length: 64 }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
  const MANY: SockAddrPolicy = { ...EG, v6: ['fd00::2'], hostDeny4: host4, hostDeny6: host6, denyNets6: ['fe80::/10'] };

  it("hostRefusals: the host's addresses as the policy lists them (loopback and link-local apart; own and published kept)", () => {
    const linkLocal = Array.from({ length: 20 }, (_, i) => `fe80::a8bb:ccff:fe00:${(i + 1).toString(16)}`);
    const host = ['127.0.0.1', '127.77.0.1', '::1', ...host4, ...host6, ...linkLocal, '10.77.0.2', 'fd00::2', '169.254.3.4', 'febf::1'];
    const r = hostRefusals(host, new Set(['10.77.0.2', 'fd00::2', '192.0.2.5']));
    expect(r.hostDeny4).toEqual([...host4.filter((a) => a !== '192.0.2.5'), '169.254.3.4']);
    expect(r.hostDeny6).toEqual(host6);
    expect(r.denyNets6).toEqual(['fe80::/10']);
    // and the whole policy builds, the sets taking what is over 16
    const w = buildSockAddr({ ...MANY, ...r });
    expect([w.addrSet4?.length, w.addrSet6?.length]).toEqual([64 * 4, 64 * 16]);
    expect(verdict({ ...MANY, ...r }, 'connect6', linkLocal[19] as string)).toBe('deny');
    expect(verdict({ ...MANY, ...r }, 'connect4', '169.254.3.4')).toBe('deny');
    expect(verdict({ ...MANY, ...r }, 'connect4', '169.254.169.254')).toBe('allow 169.254.169.254');
  });

  it('refuses each of them, by a lookup in an address set per family', () => {
    const w = buildSockAddr(MANY);
    expect(w.addrSet4?.length).toBe(64 * 4);
    expect(w.addrSet6?.length).toBe(64 * 16);
    for (const ip of [host4[0], host4[19], host4[59], host4[63]]) {
      expect(verdict(MANY, 'connect4', ip as string), ip).toBe('deny');
      expect(run(MANY, 'sendmsg4', { ip: ip as string, port: 53, type: 'dgram', msgSrc: '10.77.0.2' }).ret, ip).toBe(0);
      expect(verdict(MANY, 'connect6', `::ffff:${ip}`), ip).toBe('deny'); // the v4 rules on mapped addresses
    }
    for (const ip of [host6[0], host6[19], host6[59], host6[63]]) {
      expect(verdict(MANY, 'connect6', ip as string), ip).toBe('deny');
      expect(run(MANY, 'sendmsg6', { ip: ip as string, port: 53, type: 'dgram', msgSrc: 'fd00::2' }).ret, ip).toBe(0);
    }
    // what is not the host's goes as before: the world, a published address, a neighbour, its own loopback
    expect(verdict(MANY, 'connect4', '192.0.2.65')).toBe('allow 192.0.2.65');
    expect(verdict(MANY, 'connect4', '192.0.2.20')).toBe('deny'); // published is hostAllow4; the 20th is in the deny list too
    expect(verdict(MANY, 'connect4', '198.51.100.7')).toBe('allow 198.51.100.7');
    expect(verdict(MANY, 'connect4', '127.0.0.1')).toBe('allow 10.77.0.2');
    expect(verdict(MANY, 'connect4', '10.77.0.9')).toBe('allow 10.77.0.9');
    expect(verdict(MANY, 'connect6', '2001:db8::41')).toBe('allow 2001:db8::41');
    expect(verdict(MANY, 'connect6', '::1')).toBe('allow fd00::2');
    expect(run(MANY, 'connect4', '198.51.100.7').binds).toEqual(['10.77.0.2:0']);
  });

  it('refuses the link-local net whole, and nothing next to it', () => {
    for (const ip of ['fe80::1', 'fe80::a8bb:ccff:fedd:eeff', 'febf:ffff::1']) expect(verdict(MANY, 'connect6', ip), ip).toBe('deny');
    for (const ip of ['fec0::1', 'fe7f::1', 'fd00::9']) expect(verdict(MANY, 'connect6', ip), ip).toBe(`allow ${ip}`);
    expect(verdict({ ...V6, denyNets6: ['fe80::/10'] }, 'connect6', 'fe80::1')).toBe('deny');
    invalid({ ...MANY, v6: ['fe80::2'] }, /'fe80::2' lies in a network denied whole/);
    invalid({ ...MANY, denyNets6: ['fe80::1/10'] }, /host bits set/);
    invalid({ ...MANY, denyNets6: ['fe80::/129'] }, /not an IPv6 CIDR/);
  });

  it('up to 16 stay immediates; the set is the same whatever the order, and another set makes other program bytes', () => {
    expect(buildSockAddr({ ...MANY, hostDeny4: host4.slice(0, 16), hostDeny6: host6.slice(0, 16) }).addrSet4).toBeUndefined();
    expect(buildSockAddr({ ...MANY, hostDeny4: host4.slice(0, 17) }).addrSet4?.length).toBe(17 * 4);
    const a = buildSockAddr(MANY);
    const b = buildSockAddr({ ...MANY, hostDeny4: [...host4].reverse(), hostDeny6: [...host6, host6[3] as string] });
    expect(b.addrSet4).toEqual(a.addrSet4);
    expect(b.addrSet6).toEqual(a.addrSet6);
    expect(b.progs.connect4.equals(a.progs.connect4)).toBe(true);
    // a live change compares the programs' tags (map contents are not in them): the set's digest is
    const c = buildSockAddr({ ...MANY, hostDeny4: [...host4.slice(1), '192.0.2.99'] });
    expect(c.progs.connect4.equals(a.progs.connect4)).toBe(false);
    expect(c.progs.connect4.length).toBe(a.progs.connect4.length);
    // a program that looks up a set is never run without it
    expect(() => runSockAddr('connect4', a.progs.connect4, { ip: '192.0.2.1', local: a.storage })).toThrow(/address set/);
  });
});

describe('policy validation and limits', () => {
  it('accepts 16 entries in every list and builds small programs', () => {
    const n = (f: (i: number) => string) => Array.from({ length: 16 }, (_, i) => f(i));
    const big: SockAddrPolicy = {
      v4: n((i) => `127.77.2.${i + 1}`),
      v6: n((i) => `fd00::${(i + 1).toString(16)}`),
      peerNets4: n((i) => `127.${100 + i}.0.0/16`),
      hostDeny4: n((i) => `192.0.2.${i + 1}`),
      hostDeny6: n((i) => `2001:db8::${(i + 1).toString(16)}`),
    };
    const progs = buildSockAddrPrograms(big);
    for (const h of SOCK_ADDR_HOOKS) expect(progs[h].length / 8).toBeLessThan(4096);
    expect(verdict(big, 'bind4', '127.77.2.16')).toBe('allow 127.77.2.16');
    expect(verdict(big, 'bind6', 'fd00::10')).toBe('allow fd00::10');
    expect(verdict(big, 'connect4', '192.0.2.16')).toBe('deny');
    expect(verdict(big, 'connect4', '127.115.3.4')).toBe('allow 127.115.3.4');
    expect(verdict(big, 'connect6', '2001:db8::10')).toBe('deny');
  });

  it('refuses more than 16 entries, naming the list; the host lists up to the address set limit, naming the count', () => {
    invalid({ ...V4, v4: Array.from({ length: 17 }, (_, i) => `127.77.3.${i + 1}`) }, /v4 has 17 entries; at most 16/);
    invalid({ ...V4, peerNets4: Array.from({ length: 17 }, (_, i) => `127.${100 + i}.0.0/16`) }, /peerNets4 has 17 entries/);
    const v4s = (n: number) => Array.from({ length: n }, (_, i) => `198.18.${i >> 8}.${i & 255}`);
    const v6s = (n: number) => Array.from({ length: n }, (_, i) => `2001:db8::${(i + 1).toString(16)}`);
    invalid(
      { ...V4, hostDeny4: v4s(4001) },
      /the host has 4001 IPv4 addresses of its own to refuse; a shared context's wall holds at most 4000/,
    );
    invalid({ ...V4, hostDeny6: v6s(4001) }, /the host has 4001 IPv6 addresses of its own to refuse/);
    const w = buildSockAddr({ ...V4, hostDeny4: v4s(4000), hostDeny6: v6s(4000) });
    expect(w.addrSet4?.length).toBe(4 * 4000);
    expect(w.addrSet6?.length).toBe(16 * 4000);
    expect(verdict({ ...V4, hostDeny4: v4s(4000) }, 'connect4', '198.18.15.159')).toBe('deny');
  });

  it('refuses malformed or meaningless addresses with a clear message', () => {
    invalid({ ...V4, v4: [], v6: [] }, /at least one address/);
    invalid({ ...V4, v4: ['127.77.1'] }, /'127\.77\.1' is not an IPv4 address/);
    invalid({ ...V4, v4: ['0.0.0.0'] }, /not a unicast address/);
    invalid({ ...V4, v4: ['224.0.0.1'] }, /not a unicast address/);
    invalid({ ...V4, v4: ['127.77.1.2', '127.77.1.2'] }, /listed twice/);
    invalid({ ...V4, v6: ['fd00::g'] }, /not an IPv6 address/);
    invalid({ ...V4, v6: ['::ffff:127.77.1.9'] }, /IPv4-mapped/);
    invalid({ ...V4, v6: ['::1'] }, /host's loopback/);
    invalid({ ...V4, v6: ['::'] }, /wildcard/);
    invalid({ ...V4, peerNets4: ['127.77.1.0/16'] }, /host bits set; did you mean 127\.77\.0\.0\/16/);
    invalid({ ...V4, peerNets4: ['127.77.0.0'] }, /not an IPv4 CIDR/);
    invalid({ ...V4, peerNets4: ['127.77.0.0/33'] }, /not an IPv4 CIDR/);
    invalid({ ...V4, hostDeny4: ['127.77.1.2'] }, /both an own address and a denied host address/);
    invalid({ ...V4, hostDeny4: 'x' }, /must be a list/);
    invalid({ ...V4, v4: [7] }, /must hold strings/);
    invalid(null, /must be an object/);
  });

  it("names each hook's kernel attach type (the numbers are <linux/bpf.h>'s: test/unit/proto.test.ts)", () => {
    expect(ATTACH_TYPE).toEqual({
      bind4: 'BPF_CGROUP_INET4_BIND',
      bind6: 'BPF_CGROUP_INET6_BIND',
      connect4: 'BPF_CGROUP_INET4_CONNECT',
      connect6: 'BPF_CGROUP_INET6_CONNECT',
      sendmsg4: 'BPF_CGROUP_UDP4_SENDMSG',
      sendmsg6: 'BPF_CGROUP_UDP6_SENDMSG',
      recvmsg4: 'BPF_CGROUP_UDP4_RECVMSG',
      recvmsg6: 'BPF_CGROUP_UDP6_RECVMSG',
      getpeername4: 'BPF_CGROUP_INET4_GETPEERNAME',
      getpeername6: 'BPF_CGROUP_INET6_GETPEERNAME',
      getsockname4: 'BPF_CGROUP_INET4_GETSOCKNAME',
      getsockname6: 'BPF_CGROUP_INET6_GETSOCKNAME',
    });
  });
});
