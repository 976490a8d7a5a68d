// The OCI seccomp profile (config.json linux.seccomp) compiled to a classic
// BPF program by paene's own seccomp code (seccomp/filter.ts encodes it and its
// interpreter proves it in the tests). No libseccomp.
//
// Semantics, as libseccomp and runc give them:
// - a syscall's rules are tried in order; the first whose conditions all hold
//   decides; none matching, or a syscall with no rule, gets defaultAction;
// - conditions compare the 64-bit argument (SCMP_CMP_*; MASKED_EQ is
//   (arg & value) == valueTwo);
// - a name this kernel's table does not know is skipped (runc does the same:
//   profiles list calls of every architecture and version).
// Architectures: the rules are compiled for x86_64. Any other architecture the
// profile lists (x86, x32) gets defaultAction for every call (an allow-by-default
// profile kills instead: the i386 numbers would otherwise slip past the table).

import { PaeneError } from '../model/errors.js';
import {
  AUDIT_ARCH_X86_64,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
  X32_SYSCALL_BIT,
  EPERM,
  encode,
  type Insn,
} from './filter.js';
import { X86_64_SYSCALLS } from './syscalls-x86_64.js';

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}
export interface OciSeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[];
}
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: OciSeccompRule[];
}

function refuse(field: string, why: string): never {
  throw new PaeneError('invalid-argument', `config.json: linux.seccomp${field}: ${why}`);
}

/** An OCI action → SECCOMP_RET_* value. */
export function actionValue(action: string, errnoRet: number | undefined, where: string): number {
  const errno = errnoRet ?? EPERM;
  if (!Number.isInteger(errno) || errno < 0 || errno > 0xffff) refuse(where, `errnoRet ${errno} out of range`);
  switch (action) {
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET_ALLOW;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET_ERRNO | errno) >>> 0;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET_KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET_KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET_TRAP;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET_TRACE | errno) >>> 0;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET_LOG;
    case 'SCMP_ACT_NOTIFY':
      return refuse(where, 'SCMP_ACT_NOTIFY (a seccomp agent) is not supported by paene-runc');
    default:
      return refuse(where, `unknown action '${action}'`);
  }
}

const ARCHES = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_NATIVE'];

const ld = (k: number): Insn => ({ code: 0x20, jt: 0, jf: 0, k });
const ret = (k: number): Insn => ({ code: 0x06, jt: 0, jf: 0, k: k >>> 0 });
const jeq = (k: number, jt: number, jf: number): Insn => ({ code: 0x15, jt, jf, k: k >>> 0 });
const jgt = (k: number, jt: number, jf: number): Insn => ({ code: 0x25, jt, jf, k: k >>> 0 });
const jge = (k: number, jt: number, jf: number): Insn => ({ code: 0x35, jt, jf, k: k >>> 0 });
const jset = (k: number, jt: number, jf: number): Insn => ({ code: 0x45, jt, jf, k: k >>> 0 });
const and = (k: number): Insn => ({ code: 0x54, jt: 0, jf: 0, k: k >>> 0 });

/** A jump to a label, resolved once the program is laid out (JA takes a 32-bit offset). */
interface JaTo {
  ja: string;
}
type Item = Insn | JaTo | { label: string };

const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
const lo = (v: bigint) => Number(v & 0xffffffffn);

function u64(v: number | undefined, where: string): bigint {
  if (v === undefined) return 0n;
  if (!Number.isInteger(v) && typeof v !== 'bigint') refuse(where, `${v} is not a whole number`);
  const b = BigInt(v);
  return b < 0n ? b & 0xffffffffffffffffn : b;
}

/** Falls through when the condition holds; jumps to `fail` otherwise. */
function condition(a: OciSeccompArg, fail: string, where: string): Item[] {
  if (!Number.isInteger(a.index) || a.index < 0 || a.index > 5) refuse(`${where}.index`, `${a.index} is not 0 … 5`);
  const off = 16 + 8 * a.index;
  const v = u64(a.value, `${where}.value`);
  const F: JaTo = { ja: fail };
  switch (a.op) {
    case 'SCMP_CMP_EQ':
      return [ld(off + 4), jeq(hi(v), 0, 2), ld(off), jeq(lo(v), 1, 0), F];
    case 'SCMP_CMP_NE':
      return [ld(off + 4), jeq(hi(v), 0, 3), ld(off), jeq(lo(v), 0, 1), F];
    case 'SCMP_CMP_GT':
      return [ld(off + 4), jgt(hi(v), 4, 0), jeq(hi(v), 0, 2), ld(off), jgt(lo(v), 1, 0), F];
    case 'SCMP_CMP_GE':
      return [ld(off + 4), jgt(hi(v), 4, 0), jeq(hi(v), 0, 2), ld(off), jge(lo(v), 1, 0), F];
    case 'SCMP_CMP_LT':
      return [ld(off + 4), jge(hi(v), 0, 4), jeq(hi(v), 0, 2), ld(off), jge(lo(v), 0, 1), F];
    case 'SCMP_CMP_LE':
      return [ld(off + 4), jge(hi(v), 0, 4), jeq(hi(v), 0, 2), ld(off), jgt(lo(v), 0, 1), F];
    case 'SCMP_CMP_MASKED_EQ': {
      const want = u64(a.valueTwo, `${where}.valueTwo`);
      return [ld(off + 4), and(hi(v)), jeq(hi(want), 0, 3), ld(off), and(lo(v)), jeq(lo(want), 1, 0), F];
    }
    default:
      return refuse(`${where}.op`, `unknown operator '${a.op}'`);
  }
}

/** The profile as a seccomp program (struct sock_filter[] bytes). */
export function compileOciSeccomp(s: OciSeccomp): Buffer {
  if (typeof s !== 'object' || s === null) refuse('', 'not an object');
  if (s.listenerPath) refuse('.listenerPath', 'seccomp agents are not supported by paene-runc');
  for (const f of s.flags ?? []) refuse('.flags', `'${f}' is not supported by paene-runc`);
  for (const a of s.architectures ?? [])
    if (!ARCHES.includes(a)) refuse('.architectures', `'${a}' is not an architecture of this x86_64 host`);
  const def = actionValue(s.defaultAction, s.defaultErrnoRet, '.defaultAction');
  // other architectures: the default action, unless that is allow
  const otherArch = def === SECCOMP_RET_ALLOW || def === SECCOMP_RET_LOG ? SECCOMP_RET_KILL_PROCESS : def;

  // group rules per syscall number, in profile order
  const perNr = new Map<number, { action: number; args: OciSeccompArg[]; where: string }[]>();
  (s.syscalls ?? []).forEach((r, i) => {
    const where = `.syscalls[${i}]`;
    if (!Array.isArray(r.names) || r.names.length === 0) refuse(`${where}.names`, 'missing or empty');
    const action = actionValue(r.action, r.errnoRet ?? (r.action === 'SCMP_ACT_ERRNO' ? s.defaultErrnoRet : undefined), `${where}.action`);
    for (const name of r.names) {
      const nr = X86_64_SYSCALLS[name];
      if (nr === undefined) continue;
      const list = perNr.get(nr) ?? [];
      list.push({ action, args: r.args ?? [], where });
      perNr.set(nr, list);
    }
  });

  const items: Item[] = [ld(4), jeq(AUDIT_ARCH_X86_64, 1, 0), ret(otherArch), ld(0), jset(X32_SYSCALL_BIT, 0, 1), ret(otherArch)];
  let n = 0;
  for (const [nr, rules] of perNr) {
    // a rule that decides the syscall by itself: the same action as the default costs nothing
    if (rules.length === 1 && rules[0].args.length === 0 && rules[0].action === def) continue;
    const next = `next${n++}`;
    items.push(jeq(nr, 1, 0), { ja: next });
    rules.forEach((r, k) => {
      const fail = `${next}r${k}`;
      r.args.forEach((a, j) => items.push(...condition(a, fail, `${r.where}.args[${j}]`)));
      items.push(ret(r.action), { label: fail });
      // every condition reloads what it compares, so nothing is left from the last rule
    });
    items.push(ret(def), { label: next }, ld(0));
  }
  items.push(ret(def));
  return encode(resolve(items));
}

function resolve(items: Item[]): Insn[] {
  const at = new Map<string, number>();
  let pc = 0;
  for (const it of items) {
    if ('label' in it) at.set(it.label, pc);
    else pc++;
  }
  const out: Insn[] = [];
  for (const it of items) {
    if ('label' in it) continue;
    if ('ja' in it) {
      const t = at.get(it.ja);
      if (t === undefined) throw new PaeneError('internal', `seccomp: label ${it.ja} missing`);
      out.push({ code: 0x05, jt: 0, jf: 0, k: t - (out.length + 1) });
    } else out.push(it);
  }
  return out;
}
