// Every TypeScript → C message has one description (src/proto/): the writer
// checks entries against it, and the native side, built from the header
// generated from it, echoes what it parsed. A plan round-trips whole.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OCI_PLAN } from '../../src/proto/oci-plan.js';
import { cHeader, decodeMessage, encodeMessage, type Entry, type TokenMessage } from '../../src/proto/tokens.js';
import { createTokens, processTokens, translateConfig, translateProcess, type OciConfig } from '../../src/oci/spec.js';

const ECHO = path.resolve('dist/native/paene-oci');

/** Entries grouped by key, order kept within a key (the native echo writes its struct's order). */
function byKey(entries: readonly Entry[]): Record<string, string[][]> {
  const out: Record<string, string[][]> = {};
  for (const [k, ...v] of entries) (out[k] ??= []).push(v);
  return out;
}

function echo(msg: TokenMessage, entries: readonly Entry[]): Entry[] {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paene-proto-')), 'plan');
  fs.writeFileSync(f, encodeMessage(msg, entries));
  const r = spawnSync(ECHO, ['echo', f], { maxBuffer: 64 << 20 });
  fs.rmSync(path.dirname(f), { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`paene-oci echo: ${r.stderr.toString()}`);
  return decodeMessage(msg, r.stdout);
}

const config = (): OciConfig => ({
  ociVersion: '1.0.2',
  root: { path: '/tmp/rootfs', readonly: true },
  hostname: 'h',
  process: {
    cwd: '/srv',
    args: ['sh', '-c', 'echo "a b"'],
    env: ['PATH=/bin', 'EMPTY='],
    user: { uid: 1000, gid: 1000, additionalGids: [10, 20], umask: 18 },
    capabilities: { bounding: ['CAP_KILL', 'CAP_CHOWN'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'], inheritable: [], ambient: [] },
    rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 }],
    noNewPrivileges: true,
    oomScoreAdj: -17,
    terminal: true,
    consoleSize: { height: 24, width: 80 },
  },
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'tmpcopyup', 'size=1m'] },
    { destination: '/data', type: 'bind', source: '/srv', options: ['rbind', 'ro'] },
  ],
  linux: {
    namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }, { type: 'network', path: '/run/netns/x' }],
    devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666 }],
    maskedPaths: ['/proc/kcore'],
    readonlyPaths: ['/proc/sys'],
    sysctl: { 'net.ipv4.ip_forward': '1' },
    seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] },
  },
});

describe('TypeScript → C messages', () => {
  it('the writer refuses what the description does not allow', () => {
    expect(() => encodeMessage(OCI_PLAN, [['mount', '/a', '/b']])).toThrow(/'mount' takes 7 value\(s\)/);
    expect(() => encodeMessage(OCI_PLAN, [['teleport']])).toThrow(/unknown key 'teleport'/);
    expect(() => encodeMessage(OCI_PLAN, [['arg', 'a\0b']])).toThrow(/NUL/);
    expect(decodeMessage(OCI_PLAN, encodeMessage(OCI_PLAN, [['arg', 'x'], ['nnp']]))).toEqual([['arg', 'x'], ['nnp']]);
    expect(() => decodeMessage(OCI_PLAN, Buffer.from('arg\0x\0end\x003\0'))).toThrow(/incomplete/);
  });
  it('the generated header lists every key with its arity', () => {
    const h = cHeader(OCI_PLAN, 'src/proto/oci-plan.ts');
    for (const k of OCI_PLAN.keys) expect(h).toContain(`{"${k.key}", ${k.values.length}},`);
    expect(h).toContain('OCI_PLAN_GUARD_ALLOW');
  });
  it('the OCI plan round-trips through paene-oci: every entry arrives as sent', () => {
    const plan = translateConfig(config(), { id: 'rt', bundle: '/b', cgroup: 'v1' });
    const sent = createTokens({
      plan,
      fifo: '/s/exec.fifo',
      cgroupProcs: ['/sys/fs/cgroup/pids/x/cgroup.procs'],
      cgroupBinds: [],
      consoleSocket: '/run/c.sock',
      preserveFds: 2,
      wait: true,
    });
    const got = echo(OCI_PLAN, sent);
    expect(byKey(got)).toEqual(byKey(sent));
    // an exec plan: joins, a hook's host program, a process
    const proc = translateProcess({ cwd: '/', args: ['/bin/true'], user: { uid: 0, gid: 0 } }, 'process');
    const exec: Entry[] = [
      ['pid', '42'],
      ['ns', 'mount', '/proc/42/ns/mnt'],
      ['chroot', '/proc/42/root'],
      ['exe-host', '/usr/bin/hook'],
      ...processTokens(proc),
    ];
    expect(byKey(echo(OCI_PLAN, exec))).toEqual(byKey(exec));
  });
  it('a large plan arrives whole (no token limit between the two sides)', () => {
    const c = config();
    c.mounts = Array.from({ length: 600 }, (_, i) => ({ destination: `/m${i}`, type: 'tmpfs', source: 'tmpfs' }));
    c.linux!.devices = Array.from({ length: 400 }, (_, i) => ({ path: `/dev/d${i}`, type: 'c', major: 1, minor: 3 }));
    c.process!.env = Array.from({ length: 5000 }, (_, i) => `V${i}=${i}`);
    const plan = translateConfig(c, { id: 'big', bundle: '/b', cgroup: 'v1' });
    const sent = createTokens({ plan, fifo: '/f', cgroupProcs: [], cgroupBinds: [] });
    expect(sent.length).toBeGreaterThan(6000);
    expect(byKey(echo(OCI_PLAN, sent))).toEqual(byKey(sent));
  });
});

describe('the helper request and the exec plan', () => {
  const helper = path.resolve('dist/native/paene-helper');
  const front = path.resolve('dist/native/paene');
  const request = {
    cgroupProcs: ['/sys/fs/cgroup/pids/p/c/cgroup.procs', '/sys/fs/cgroup/unified/p/c/cgroup.procs'],
    lower: '/l',
    upper: '/u',
    work: '/w',
    rootfs: '/r',
    hostname: 'web',
    scratch: '/s',
    empty: '/e',
    init: '/dist/native/paene-init',
    sysctls: { 'kernel.shmmax': '4096' },
    masked: ['/proc/kcore'],
    readonly: ['/proc/sys'],
    writable: ['/proc/sys/kernel/hostname'],
    devices: [{ path: 'null', major: 1, minor: 3, mode: 0o666 }],
    capsMask: 0xa80425fbn,
    seccomp: Buffer.from('0600000000000000', 'hex'),
    netns: 'new' as const,
    loUp: true,
    sockAddr: { cgroupDir: '/sys/fs/cgroup/unified/p/c', progs: ['bind4=00', 'connect4=11'] },
    landlockScoped: 1,
    sched: { policy: 3, sliceNs: 0 },
    main: {
      argv: ['httpd', '-f', 'a b'],
      env: ['PATH=/bin', 'X=y z'],
      cwd: '/srv',
      uid: 33,
      gid: 33,
      restart: 'on-failure' as const,
      maxRestarts: 3,
      backoff: { firstMs: 100, maxMs: 30000, resetAfterMs: 10000 },
    },
    log: { prog: '/dist/native/paene-log', dir: '/root/contexts/web/log', maxBytes: 4096, keep: 2, stream: 'stdout' as const },
    runTmpfs: 1 << 20,
  };
  const run = (prog: string, args: string[]) => {
    const r = spawnSync(prog, args, { maxBuffer: 16 << 20 });
    if (r.status !== 0) throw new Error(`${prog} ${args[0]}: ${r.stderr.toString()}`);
    return r.stdout;
  };
  it('the init plan and the log plan round-trip through paene-init and paene-log (what they read is what was meant)', async () => {
    const { initPlanWords, logPlanWords } = await import('../../src/kernel/helper.js');
    const { INIT_PLAN, LOG_PLAN } = await import('../../src/proto/main-process.js');
    const { parseFlagArgs } = await import('../../src/proto/tokens.js');
    const words = initPlanWords(request.main);
    const echoed = run(path.resolve('dist/native/paene-init'), ['echo', ...words])
      .toString('utf8')
      .split('\0')
      .slice(0, -1);
    const sent = parseFlagArgs(INIT_PLAN, words);
    const back = parseFlagArgs(INIT_PLAN, echoed);
    expect(byKey(back.entries)).toEqual(byKey(sent.entries));
    expect(back.rest).toEqual(['httpd', '-f', 'a b']);
    for (const log of [request.log, { ...request.log, stream: 'console' as const }]) {
      const lw = logPlanWords(log);
      const lback = decodeMessage(LOG_PLAN, run(path.resolve('dist/native/paene-log'), ['echo', ...lw]));
      expect(byKey(lback)).toEqual(byKey(parseFlagArgs(LOG_PLAN, lw).entries));
    }
  });

  it('a guest-init start request round-trips through paene-helper', async () => {
    const { startArgs } = await import('../../src/kernel/helper.js');
    const { HELPER_REQUEST } = await import('../../src/proto/helper-request.js');
    const { parseFlagArgs } = await import('../../src/proto/tokens.js');
    const { main: _main, ...rest } = request;
    const args = startArgs({ ...rest, guestInit: { path: '/sbin/init', env: ['container=paene'] } }).slice(1);
    const back = decodeMessage(HELPER_REQUEST, run(helper, ['echo-request', ...args]));
    expect(byKey(back)).toEqual(byKey(parseFlagArgs(HELPER_REQUEST, args).entries));
  });

  it('a start request round-trips through paene-helper', async () => {
    const { startArgs } = await import('../../src/kernel/helper.js');
    const { HELPER_REQUEST } = await import('../../src/proto/helper-request.js');
    const { parseFlagArgs } = await import('../../src/proto/tokens.js');
    const args = startArgs(request).slice(1);
    const back = decodeMessage(HELPER_REQUEST, run(helper, ['echo-request', ...args]));
    expect(byKey(back)).toEqual(byKey(parseFlagArgs(HELPER_REQUEST, args).entries));
    expect(() => startArgs({ ...request, hostname: 'a\0b' })).toThrow(/NUL/);
    // the helper's word bound (INIT_WORDS_MAX, one source) is refused here with a sentence, not cut there
    expect(() => startArgs({ ...request, main: { ...request.main, argv: Array(4096).fill('x') } })).toThrow(/at most 4096 words/);
  });
  it('an exec request round-trips, the command after -- kept whole', async () => {
    const { execArgs } = await import('../../src/kernel/helper.js');
    const { HELPER_REQUEST } = await import('../../src/proto/helper-request.js');
    const { parseFlagArgs } = await import('../../src/proto/tokens.js');
    const args = execArgs({
      initPid: 7,
      cgroupProcs: ['/c'],
      capsMask: 0x20n,
      env: ['A=1'],
      cwd: '/tmp',
      user: { uid: 1, gid: 2 },
      tty: true,
      startedFd: 3,
      argv: ['sh', '-c', '--', '--tty'],
    }).slice(1);
    const echoed = run(helper, ['echo-request', ...args])
      .toString('utf8')
      .split('\0');
    const dash = echoed.indexOf('--');
    expect(echoed.slice(dash + 1, -3)).toEqual(['sh', '-c', '--', '--tty']);
    const sent = parseFlagArgs(HELPER_REQUEST, args);
    const flagsBack = parseFlagArgs(HELPER_REQUEST, echoed.slice(0, dash).concat('--'));
    expect(byKey(flagsBack.entries)).toEqual(byKey(sent.entries));
    expect(sent.entries.some(([k]) => k === '--started-fd')).toBe(true);
  });
  it('the exec plan round-trips through the front door', async () => {
    const { execPlanBytes } = await import('../../src/kernel/helper.js');
    const { EXEC_PLAN } = await import('../../src/proto/exec-plan.js');
    const bytes = execPlanBytes({
      initPid: 9,
      starttime: 123,
      capsRoot: 0xffn,
      capsUser: 0n,
      term: 'xterm',
      env: ['PATH=/bin', 'X=a b'],
      cgroupProcs: ['/c'],
      sched: { policy: 0, sliceNs: 300000 },
    });
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paene-proto-')), 'exec.plan');
    fs.writeFileSync(f, bytes);
    const back = decodeMessage(EXEC_PLAN, run(front, ['__echo-exec-plan', f]));
    fs.rmSync(path.dirname(f), { recursive: true, force: true });
    expect(back).toEqual(decodeMessage(EXEC_PLAN, bytes));
  });
});

describe('answers carry codes', () => {
  it('ok VALUE, err CODE MESSAGE; a first word that is no code is an older helper', async () => {
    const { parseReply } = await import('../../src/proto/tokens.js');
    const { HELPER_ERRORS } = await import('../../src/proto/helper-reply.js');
    expect(parseReply(HELPER_ERRORS, 'ok 1234')).toEqual({ ok: true, value: '1234' });
    expect(parseReply(HELPER_ERRORS, 'err cgroup-gone /sys/fs/cgroup/pids/p/_shared/cgroup.procs')).toEqual({
      ok: false,
      code: 'cgroup-gone',
      message: '/sys/fs/cgroup/pids/p/_shared/cgroup.procs',
    });
    expect(parseReply(HELPER_ERRORS, 'err unknown flag --x')).toEqual({ ok: false, code: undefined, message: 'unknown flag --x' });
    const h = (await import('../../src/proto/tokens.js')).cCodesHeader(HELPER_ERRORS, 'x');
    for (const c of HELPER_ERRORS.codes) expect(h).toContain(`"${c.code}",`);
  });
  it('the helper answers an unknown flag with its code', () => {
    const r = spawnSync(path.resolve('dist/native/paene-helper'), ['echo-request', '--teleport', 'x']);
    expect(r.status).not.toBe(0);
    expect(r.stderr.toString()).toMatch(/--teleport/);
  });
});

describe('the I/O throttler', () => {
  it('takes its flags from the message and refuses an unknown one', async () => {
    const { IO_THROTTLE_REQUEST } = await import('../../src/proto/io-throttle.js');
    const { flagArgs } = await import('../../src/proto/tokens.js');
    expect(() => flagArgs(IO_THROTTLE_REQUEST, [['--write-bps']])).toThrow(/takes 1 value/);
    const r = spawnSync(path.resolve('dist/native/paene-iothrottle'), ['--teleport', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr.toString()).toMatch(/usage: paene-iothrottle/);
  });
});

describe('what both languages share', () => {
  it('the name rule: the native front door accepts exactly the names the runtime does', async () => {
    const { NAME_RE, namesHeader } = await import('../../src/proto/names.js');
    const h = namesHeader('x');
    expect(h).toContain('#define PAENE_DEFAULT_ROOT "/var/lib/paene"');
    // compile the generated check and run it on names either side could get wrong
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paene-names-'));
    fs.writeFileSync(path.join(dir, 'paene_names.h'), h);
    fs.writeFileSync(
      path.join(dir, 't.c'),
      '#include <stdio.h>\n#include "paene_names.h"\nint main(int c, char **v) { for (int i = 1; i < c; i++) printf("%d", paene_valid_name(v[i])); return 0; }\n',
    );
    const cc = spawnSync('cc', ['-o', path.join(dir, 't'), path.join(dir, 't.c')]);
    expect(cc.status).toBe(0);
    const names = ['web', 'a', '0db', 'web-1', 'w_x', '-web', '_x', 'Web', 'a'.repeat(63), 'a'.repeat(64), 'we.b', 'wé', ''];
    const got = spawnSync(path.join(dir, 't'), names, { encoding: 'utf8' }).stdout;
    fs.rmSync(dir, { recursive: true, force: true });
    expect(got).toBe(names.map((n) => (NAME_RE.test(n) ? '1' : '0')).join(''));
  });
});

describe('the BPF loader program list', () => {
  const bpf = path.resolve('dist/native/paene-bpf');
  const echoList = (args: string[]) => {
    const r = spawnSync(bpf, ['echo', ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
    return { status: r.status, lines: r.stdout.split('\n').filter(Boolean), stderr: r.stderr };
  };
  it('round-trips through paene-bpf echo: storage, every attach type, programs as sent', async () => {
    const { SOCK_ATTACH_LIST, parseSockAttachArgs, sockAttachArgs } = await import('../../src/proto/sock-attach.js');
    const insns = (n: number, seed: number) => Buffer.from(Array.from({ length: 8 * n }, (_, i) => (i * 7 + seed) & 0xff));
    const sent = {
      skStorage: 16,
      cgStorage: Buffer.from('00112233445566778899', 'hex'),
      addrSet4: Buffer.from('c0000201c0000202', 'hex'),
      addrSet6: Buffer.alloc(16 * 3, 0xfe),
      progs: SOCK_ATTACH_LIST.types.map((t, i) => [t.name, insns(i + 1, i)] as const),
    };
    const args = sockAttachArgs(sent);
    const r = echoList(args);
    expect(r.status, r.stderr).toBe(0);
    expect(r.lines).toEqual(args);
    expect(parseSockAttachArgs(r.lines)).toEqual(sent);
    // without the storage maps, and a large program
    const big = { progs: [['connect6', insns(4096, 3)] as const] };
    expect(parseSockAttachArgs(echoList(sockAttachArgs(big)).lines)).toEqual(big);
    // the largest address sets, one set alone
    const sets = { addrSet6: Buffer.alloc(16 * SOCK_ATTACH_LIST.maxAddrSet, 0x20), progs: [['connect6', insns(2, 1)] as const] };
    expect(parseSockAttachArgs(echoList(sockAttachArgs(sets)).lines)).toEqual(sets);
  });
  it('both sides refuse what the description does not allow', async () => {
    const { sockAttachArgs, parseSockAttachArgs } = await import('../../src/proto/sock-attach.js');
    const one = Buffer.alloc(8);
    expect(() => sockAttachArgs({ progs: [] })).toThrow(/no programs/);
    expect(() => sockAttachArgs({ skStorage: 6, progs: [['bind4', one]] })).toThrow(/multiple of 4/);
    expect(() => sockAttachArgs({ progs: [['bind4', Buffer.alloc(7)]] })).toThrow(/not whole eBPF instructions/);
    expect(() => sockAttachArgs({ addrSet4: Buffer.alloc(6), progs: [['bind4', one]] })).toThrow(
      /addr-set4: 1 to 4000 addresses of 4 bytes/,
    );
    expect(() => sockAttachArgs({ addrSet6: Buffer.alloc(16 * 4001), progs: [['bind4', one]] })).toThrow(/addr-set6: 1 to 4000/);
    expect(() => sockAttachArgs({ progs: Array.from({ length: 33 }, () => ['bind4', one] as const) })).toThrow(/more than 32/);
    expect(() => parseSockAttachArgs(['8=00'])).toThrow(/expected TYPE=HEX/);
    for (const bad of [
      ['8=0000000000000000'],
      ['bind4=zz'],
      ['bind4=00'],
      ['sk-storage=6', 'bind4=0000000000000000'],
      ['addr-set4=c00002', 'bind4=0000000000000000'],
      [`addr-set4=${'00'.repeat(4 * 4001)}`, 'bind4=0000000000000000'],
      ['addr-set6=zz', 'bind4=0000000000000000'],
      [],
    ]) {
      const r = echoList(bad);
      expect(r.status, bad.join(' ')).toBe(2);
    }
  });
  it("the attach types' numbers come from the system headers and agree with the runtime's", async () => {
    const { SOCK_ATTACH_LIST } = await import('../../src/proto/sock-attach.js');
    const { ATTACH_TYPE, BPF_PROG_TYPE_CGROUP_SOCK_ADDR } = await import('../../src/net/sockaddr.js');
    // <linux/bpf.h> as the C compiler reads it (comments gone), its two enums counted here, apart from the build
    const cpp = spawnSync(process.env.CC ?? 'cc', ['-E', '-x', 'c', '-'], { input: '#include <linux/bpf.h>\n', encoding: 'utf8' });
    expect(cpp.status, cpp.stderr).toBe(0);
    const kernelEnum = (name: string): Record<string, number> => {
      const body = new RegExp(`enum ${name} \\{([^}]*)\\}`).exec(cpp.stdout)?.[1] ?? '';
      const out: Record<string, number> = {};
      let next = 0;
      for (const item of body.split(',').map((x) => x.trim())) {
        const m = /^(\w+)(?:\s*=\s*(\d+))?$/.exec(item);
        if (!m) continue;
        next = m[2] === undefined ? next : Number(m[2]);
        out[m[1] as string] = next++;
      }
      return out;
    };
    const attach = kernelEnum('bpf_attach_type');
    const prog = kernelEnum('bpf_prog_type');
    expect(attach.BPF_CGROUP_INET4_BIND).toBeGreaterThan(0);
    const { BPF_CGROUP_DEVICE } = await import('../../src/bpf/ebpf.js');
    const r = spawnSync(bpf, ['types'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const got = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([name, attach, prog]) => [name, [Number(attach), Number(prog)]]),
    );
    expect(Object.keys(got)).toEqual(SOCK_ATTACH_LIST.types.map((t) => t.name));
    for (const t of SOCK_ATTACH_LIST.types) expect(got[t.name], t.name).toEqual([attach[t.attach], prog[t.prog]]);
    for (const [hook, name] of Object.entries(ATTACH_TYPE)) expect(got[hook], hook).toEqual([attach[name], BPF_PROG_TYPE_CGROUP_SOCK_ADDR]);
    expect(got.device?.[0]).toBe(BPF_CGROUP_DEVICE);
  });
});
