import { describe, expect, it } from 'vitest';
import {
  capBit,
  capsBeyond,
  describeParts,
  judgeAdmin,
  judgeEscape,
  parseProbeLine,
  parseProbeStatus,
  summarize,
  type AttemptResult,
} from '../../src/check/escape-judge.js';
import { ESCAPE_ATTEMPTS, ADMIN_OPERATIONS } from '../../src/check/escape.js';
import { capMask } from '../../src/model/caps.js';

describe('escape probe output', () => {
  it('splits the last line into parts at ", " before a result token only', () => {
    expect(parseProbeLine('noise\nEPERM init_module, EPERM finit_module\n')).toEqual([
      { result: 'EPERM', detail: 'init_module' },
      { result: 'EPERM', detail: 'finit_module' },
    ]);
    expect(parseProbeLine('contained 2 pid(s) of 100 answer, all mine')).toHaveLength(1);
    expect(parseProbeLine('EPERM socket(AF_INET, SOCK_RAW), ok socket(AF_PACKET)').map((p) => p.result)).toEqual(['EPERM', 'ok']);
    expect(parseProbeLine('')).toEqual([]);
  });

  it('judges: ok = escaped, unprovable errno wins over blocked, unknown errno = inconclusive', () => {
    const exp = { blockedBy: ['EPERM'], unprovable: ['ENOSYS'] };
    expect(judgeEscape(parseProbeLine('EPERM a, EPERM b'), exp)).toBe('blocked');
    expect(judgeEscape(parseProbeLine('EPERM a, ok b'), exp)).toBe('ESCAPED');
    expect(judgeEscape(parseProbeLine('ENOSYS init_module, ENOSYS finit_module'), exp)).toBe('not provable here');
    expect(judgeEscape(parseProbeLine('EINVAL init_module'), exp)).toBe('inconclusive');
    expect(judgeEscape([], exp)).toBe('inconclusive');
    expect(judgeEscape(parseProbeLine('ENOSYS x'), { blockedBy: ['ENOSYS'] })).toBe('blocked');
  });

  it('judges admin operations: every part ok', () => {
    expect(judgeAdmin(parseProbeLine('ok fifo'))).toBe('works');
    expect(judgeAdmin(parseProbeLine('ok a, EPERM b'))).toBe('FAILED');
    expect(judgeAdmin([])).toBe('FAILED');
    expect(describeParts(parseProbeLine('EPERM a, EROFS b'))).toBe('EPERM a; EROFS b');
  });

  it('reads the status line and finds capabilities beyond a mask', () => {
    const st = parseProbeStatus('status uid=1000 euid=0 eff=0000000000200000 prm=0 bnd=00000000b40c04ff');
    expect(st).toMatchObject({ uid: 1000, euid: 0, eff: capBit('SYS_ADMIN') });
    const secure = capMask({ profile: 'secure', add: [], drop: [] });
    expect(capsBeyond(st?.eff ?? 0n, secure)).toEqual(['SYS_ADMIN']);
    expect(capsBeyond(st?.bnd ?? 0n, secure)).toEqual([]);
    expect(parseProbeStatus('EPERM exec')).toBeUndefined();
  });

  it('summarizes: escaped, inconclusive, host changes and failed admin operations fail the check', () => {
    const r = (suite: 'escape' | 'admin', verdict: AttemptResult['verdict'], hostChanged = false): AttemptResult => ({
      suite,
      id: 'x',
      attempt: 'x',
      expected: '',
      observed: '',
      verdict,
      hostChanged,
    });
    expect(summarize([r('escape', 'blocked'), r('escape', 'not provable here'), r('admin', 'works')])).toMatchObject({
      attempts: 2,
      blocked: 1,
      notProvable: 1,
      adminOperations: 1,
      ok: true,
    });
    expect(summarize([r('escape', 'ESCAPED')]).ok).toBe(false);
    expect(summarize([r('escape', 'inconclusive')]).ok).toBe(false);
    expect(summarize([r('escape', 'blocked', true)]).ok).toBe(false);
    expect(summarize([r('admin', 'FAILED')]).ok).toBe(false);
  });

  it('covers every attempt issue 3 lists, with unique ids', () => {
    const ids = ESCAPE_ATTEMPTS.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [
      'mount-tmpfs',
      'mount-bind-root',
      'remount-proc-rw',
      'chroot-fchdir',
      'pivot-root',
      'mknod-block',
      'mknod-char',
      'open-host-blockdev',
      'modules',
      'insmod',
      'reboot',
      'clock',
      'date-s',
      'sethostname',
      'rlimit-nofile',
      'iopl',
      'proc-sys-write',
      'sysrq-trigger',
      'sys-write',
      'proc-kcore',
      'dev-mem',
      'kill-host-process',
      'kill-other-context',
      'host-pid1',
      'setns',
      'cgroup-files',
      'mount-cgroupfs',
      'raw-socket',
      'keyctl',
      'bpf',
      'perf',
      'userns-unshare',
      'userns-clone',
      'file-cap-sys-admin',
      'setuid-shell',
      'shocker',
      'tiocsti',
      'proc1-root',
      'proc1-exe-write',
    ]) {
      expect(ids).toContain(id);
    }
    const ops = ADMIN_OPERATIONS.map((o) => o.id);
    for (const id of [
      'chown-chmod',
      'setuid-setgid',
      'bind-low-port',
      'kill-own',
      'ptrace-own',
      'chroot-inside',
      'mknod-fifo',
      'renice-lower',
      'write-anywhere',
      'replace-shared-file',
    ])
      expect(ops).toContain(id);
  });
});
