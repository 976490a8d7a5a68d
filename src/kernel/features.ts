// Checks that the host can run contexts, naming exactly what is missing.

import fs from 'node:fs';
import { PaeneError } from '../core/errors.js';

export function requireRoot(what: string): void {
  if (process.platform !== 'linux') throw new PaeneError('unsupported', 'paene runs on Linux only (it uses namespaces, cgroups and overlayfs)');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PaeneError('not-root', `${what} needs root (namespaces, cgroups and mounts are privileged); run it with sudo`);
  }
}

/** Kernel features a context needs; returns the missing ones, described. */
export function missingFeatures(): string[] {
  const missing: string[] = [];
  for (const ns of ['pid', 'ipc', 'uts', 'mnt']) {
    if (!fs.existsSync(`/proc/self/ns/${ns}`)) missing.push(`${ns} namespaces (CONFIG_${ns.toUpperCase()}_NS)`);
  }
  let filesystems = '';
  try {
    filesystems = fs.readFileSync('/proc/filesystems', 'utf8');
  } catch {
    missing.push('/proc is not mounted');
  }
  if (filesystems && !/\toverlay\n/.test(filesystems)) missing.push('overlayfs (CONFIG_OVERLAY_FS; try `modprobe overlay`)');
  if (filesystems && !/\tcgroup2?\n/.test(filesystems)) missing.push('cgroups (CONFIG_CGROUPS)');
  return missing;
}

export function requireFeatures(): void {
  const m = missingFeatures();
  if (m.length > 0) throw new PaeneError('unsupported', `this kernel lacks what a context needs: ${m.join('; ')}`);
}
