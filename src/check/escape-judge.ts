// Pure part of the escape suite: reading the probe's one-line answers,
// turning them into verdicts, and counting. No I/O, unit-tested.
//
// The probe (src/native/tools/escape-probe.c) prints `RESULT detail`, several
// parts joined by ", " when one attempt makes more than one call. RESULT is
// `ok` (the call did what was asked), an errno name (EPERM, EROFS, ...), or
// a marker (masked, contained, empty, status, unlimited).

import { CAP_NAMES, maskToNames } from '../model/caps.js';

export type EscapeVerdict = 'blocked' | 'ESCAPED' | 'not provable here' | 'inconclusive';
export type AdminVerdict = 'works' | 'FAILED';
export type Verdict = EscapeVerdict | AdminVerdict;

export interface ProbePart {
  result: string;
  detail: string;
}

/** The parts of the probe's last non-empty output line. */
export function parseProbeLine(stdout: string): ProbePart[] {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const last = lines.at(-1);
  if (last === undefined) return [];
  return last.split(/, (?=(?:ok|E[A-Z0-9]+|masked|contained|empty|unlimited|status)\b)/).map((p) => {
    const m = /^(\S+)\s*(.*)$/.exec(p.trim()) as RegExpExecArray;
    return { result: m[1] as string, detail: m[2] as string };
  });
}

export interface EscapeExpectation {
  /** results that show the wall held (errnos or markers) */
  blockedBy: readonly string[];
  /** results that prove nothing on this machine (ENOSYS of a feature the kernel lacks) */
  unprovable?: readonly string[];
}

/**
 * One attempt's verdict from all its parts: any `ok` is an escape; a part
 * with an unprovable result (and no escape) makes the whole attempt "not
 * provable here"; all parts blocked → blocked; anything else (an errno the
 * attempt did not expect, no output) → inconclusive, which fails the check too:
 * an unexpected EINVAL can mean the permission check passed.
 */
export function judgeEscape(parts: readonly ProbePart[], exp: EscapeExpectation): EscapeVerdict {
  if (parts.length === 0) return 'inconclusive';
  if (parts.some((p) => p.result === 'ok')) return 'ESCAPED';
  if (parts.some((p) => exp.unprovable?.includes(p.result))) return 'not provable here';
  if (parts.every((p) => exp.blockedBy.includes(p.result))) return 'blocked';
  return 'inconclusive';
}

/** An admin operation works when every part is `ok`. */
export function judgeAdmin(parts: readonly ProbePart[]): AdminVerdict {
  return parts.length > 0 && parts.every((p) => p.result === 'ok') ? 'works' : 'FAILED';
}

/** Short form of the parts for the table's "observed" column. */
export function describeParts(parts: readonly ProbePart[]): string {
  if (parts.length === 0) return '(no output)';
  return parts.map((p) => (p.detail ? `${p.result} ${p.detail}` : p.result)).join('; ');
}

/** The probe's `status` line: uid=0 euid=0 eff=HEX prm=HEX bnd=HEX. */
export interface ProbeStatus {
  uid: number;
  euid: number;
  eff: bigint;
  prm: bigint;
  bnd: bigint;
}

export function parseProbeStatus(stdout: string): ProbeStatus | undefined {
  const m = /status uid=(\d+) euid=(\d+) eff=([0-9a-f]+) prm=([0-9a-f]+) bnd=([0-9a-f]+)/.exec(stdout);
  if (!m) return undefined;
  return { uid: Number(m[1]), euid: Number(m[2]), eff: BigInt(`0x${m[3]}`), prm: BigInt(`0x${m[4]}`), bnd: BigInt(`0x${m[5]}`) };
}

/** Capabilities in `have` that `allowed` does not contain, by name (empty = within bounds). */
export function capsBeyond(have: bigint, allowed: bigint): string[] {
  return maskToNames(have & ~allowed);
}

export function capBit(name: string): bigint {
  const i = CAP_NAMES.indexOf(name);
  if (i < 0) throw new Error(`unknown capability ${name}`);
  return 1n << BigInt(i);
}

export interface AttemptResult {
  suite: 'escape' | 'admin';
  id: string;
  attempt: string;
  expected: string;
  observed: string;
  verdict: Verdict;
  /** the wall that is expected to stop it (docs/security.md) */
  wall?: string;
  /** what was checked on the host after the attempt, and whether it held */
  host?: string;
  hostChanged?: boolean;
}

export interface EscapeSummary {
  attempts: number;
  blocked: number;
  escaped: number;
  notProvable: number;
  inconclusive: number;
  hostChanged: number;
  adminOperations: number;
  adminFailed: number;
  /** true when nothing escaped, nothing was inconclusive, the host never changed, every admin operation worked */
  ok: boolean;
}

export function summarize(results: readonly AttemptResult[]): EscapeSummary {
  const esc = results.filter((r) => r.suite === 'escape');
  const adm = results.filter((r) => r.suite === 'admin');
  const count = (v: Verdict) => esc.filter((r) => r.verdict === v).length;
  const s = {
    attempts: esc.length,
    blocked: count('blocked'),
    escaped: count('ESCAPED'),
    notProvable: count('not provable here'),
    inconclusive: count('inconclusive'),
    hostChanged: results.filter((r) => r.hostChanged).length,
    adminOperations: adm.length,
    adminFailed: adm.filter((r) => r.verdict !== 'works').length,
  };
  return { ...s, ok: s.escaped === 0 && s.inconclusive === 0 && s.hostChanged === 0 && s.adminFailed === 0 };
}
