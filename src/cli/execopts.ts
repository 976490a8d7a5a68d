// `paene exec`'s options that need more than a flag: --user by number or
// name, --env-file.

import fs from 'node:fs';
import { PaeneError } from '../model/errors.js';

/** UID[:GID] as numbers, or NAME[:GROUP] for the runtime to look up in the guest's /etc/passwd and /etc/group. */
export function userSpec(v: string): { uid: number; gid: number } | string {
  const m = /^(\d+)(?::(\d+))?$/.exec(v);
  if (m) {
    const uid = Number(m[1]);
    const gid = Number(m[2] ?? m[1]);
    if (uid > 0xfffffffe || gid > 0xfffffffe) throw new PaeneError('invalid-argument', `--user: ids go up to 4294967294, got '${v}'`);
    return { uid, gid };
  }
  if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?(?::(?:\d+|[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}))?$/.test(v))
    throw new PaeneError('invalid-argument', `--user wants UID[:GID] or NAME[:GROUP], got '${v}'`);
  return v;
}

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The variables of --env-file files, in order (a later file wins): one
 * KEY=VALUE a line, taken as it is (no quotes removed, no expansion, as
 * docker reads them); blank lines and # comments skipped; a bare KEY takes
 * the caller's value if it has one.
 */
export function readEnvFiles(files: string[], callerEnv: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new PaeneError('not-found', `--env-file ${file}: ${(e as Error).message.replace(/^[A-Z]+: /, '')}`);
    }
    for (const [i, raw] of text.split('\n').entries()) {
      const line = raw.replace(/\r$/, '');
      if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
      const eq = line.indexOf('=');
      const key = (eq < 0 ? line : line.slice(0, eq)).trimStart();
      if (!KEY_RE.test(key)) throw new PaeneError('invalid-argument', `--env-file ${file}:${i + 1}: not KEY=VALUE: '${line.slice(0, 80)}'`);
      if (eq >= 0) env[key] = line.slice(eq + 1);
      else if (callerEnv[key] !== undefined) env[key] = callerEnv[key] as string;
    }
  }
  return env;
}
