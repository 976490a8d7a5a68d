// `paene autostart` on a state root (docs/services.md): the candidates from
// the stored configs and the run states, and the boot scripts that call it
// (a systemd unit or a sysv init script, from the templates in contrib/).

import fs from 'node:fs';
import path from 'node:path';
import type { AutostartCandidate } from '../model/autostart.js';
import { PaeneError } from '../model/errors.js';
import type { Layout } from '../kernel/layout.js';
import { packageRoot } from '../kernel/package.js';
import type { StateStore } from './state.js';

/** Every context as the plan sees it; a context whose config cannot be read is in `broken` (it fails, the others go on). */
export function autostartCandidates(rt: { store: StateStore; layout: Layout }): {
  candidates: AutostartCandidate[];
  broken: { name: string; error: Error }[];
} {
  const candidates: AutostartCandidate[] = [];
  const broken: { name: string; error: Error }[] = [];
  for (const name of rt.store.names()) {
    try {
      const c = rt.store.readConfigIfAny(name);
      if (!c) continue; // destroyed meanwhile
      candidates.push({
        name,
        ...(c.autostart ? { autostart: c.autostart } : {}),
        ...(c.restart ? { restart: c.restart } : {}),
        running: rt.store.live(name) !== undefined,
        stoppedByUser: fs.existsSync(rt.layout.stoppedMark(name)),
      });
    } catch (e) {
      broken.push({ name, error: e instanceof Error ? e : new Error(String(e)) });
    }
  }
  return { candidates, broken };
}

/** What a host shutdown's stop needs of the runtime. */
export interface ShutdownRuntime {
  store: StateStore;
  layout: Layout;
  stop(name: string, opts: { timeoutMs?: number; byUser?: boolean }): Promise<{ wasRunning: boolean }>;
}

/** The contexts a host shutdown stops: those running now. */
export function runningNames(rt: { store: StateStore }): string[] {
  return rt.store.names().filter((n) => rt.store.live(n) !== undefined);
}

/**
 * Stops a context as a host shutdown does (`paene autostart stop`, the boot
 * files' stop): not a user's stop, so it leaves no stopped-by-user mark and a
 * `--restart unless-stopped` context comes back at the next boot.
 */
export async function stopForShutdown(rt: ShutdownRuntime, name: string, timeoutMs: number): Promise<{ wasRunning: boolean }> {
  return rt.stop(name, { timeoutMs, byUser: false });
}

export type BootSystem = 'systemd' | 'sysv';

export const BOOT_FILES: Record<BootSystem, { template: string; file: string; dest: string; mode: number }> = {
  systemd: { template: 'paene-autostart.service.in', file: 'paene-autostart.service', dest: '/etc/systemd/system', mode: 0o644 },
  sysv: { template: 'paene-autostart.init.in', file: 'paene-autostart', dest: '/etc/init.d', mode: 0o755 },
};

/** The host's boot system: systemd when it runs (its runtime directory), else sysv. */
export function hostBootSystem(): BootSystem {
  return fs.existsSync('/run/systemd/system') ? 'systemd' : 'sysv';
}

/** A word that needs no quoting in a unit file or a shell script. */
const PLAIN_WORD = /^[A-Za-z0-9_./:@%+=,-]+$/;

/**
 * Writes the boot file of `system` into `dest` (default: /etc/systemd/system
 * or /etc/init.d), with `command` (the paene program and its global options,
 * absolute) in place of @PAENE@: it runs `paene autostart` at boot and
 * `paene autostart stop` at shutdown. Returns the file and the command that enables it.
 */
export function installBootFile(o: { system: BootSystem; command: string[]; dest?: string; templates?: string }): {
  file: string;
  enable: string;
} {
  const spec = BOOT_FILES[o.system];
  const [program] = o.command;
  if (program === undefined || !path.isAbsolute(program))
    throw new PaeneError('internal', 'the paene command of a boot file must be absolute');
  for (const w of o.command)
    if (!PLAIN_WORD.test(w))
      throw new PaeneError('invalid-argument', `'${w}' has characters a boot file would need quoted: use a path without them`);
  const templateFile = path.join(o.templates ?? path.join(packageRoot(), 'contrib'), spec.template);
  let template: string;
  try {
    template = fs.readFileSync(templateFile, 'utf8');
  } catch (e) {
    throw new PaeneError('internal', `the template ${templateFile} is missing (a broken install of paene?)`, { cause: e });
  }
  const dest = path.resolve(o.dest ?? spec.dest);
  if (!fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory())
    throw new PaeneError('not-found', `no directory ${dest} to install ${spec.file} into`);
  const file = path.join(dest, spec.file);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, template.replaceAll('@PAENE@', o.command.join(' ')), { mode: spec.mode });
  fs.chmodSync(tmp, spec.mode);
  fs.renameSync(tmp, file);
  const enable =
    o.system === 'systemd'
      ? `systemctl daemon-reload && systemctl enable ${spec.file}`
      : `update-rc.d ${spec.file} defaults   # or: chkconfig --add ${spec.file}`;
  return { file, enable };
}
