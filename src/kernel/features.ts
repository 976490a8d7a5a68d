// Checks that the host can run contexts, naming exactly what is missing.

import fs from 'node:fs';
import { PaeneError } from '../model/errors.js';

export function requireRoot(what: string): void {
  if (process.platform !== 'linux')
    throw new PaeneError('unsupported', 'paene runs on Linux only (it uses namespaces, cgroups and overlayfs)');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PaeneError('not-root', `${what} needs root (namespaces, cgroups and mounts are privileged); run it with sudo`);
  }
}

export interface HostProbe {
  exists(path: string): boolean;
  read(path: string): string | undefined;
}

const realHost: HostProbe = {
  exists: (p) => fs.existsSync(p),
  read: (p) => {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  },
};

/** Kernel features a context needs; returns the missing ones, described. */
export function missingFeatures(host: HostProbe = realHost): string[] {
  const missing: string[] = [];
  const ns: Record<string, string> = { pid: 'PID_NS', ipc: 'IPC_NS', uts: 'UTS_NS', mnt: 'NAMESPACES', cgroup: 'CGROUPS' };
  for (const [n, config] of Object.entries(ns)) {
    if (!host.exists(`/proc/self/ns/${n}`)) missing.push(`${n} namespaces (CONFIG_${config})`);
  }
  const filesystems = host.read('/proc/filesystems');
  if (filesystems === undefined) {
    missing.push('/proc is not mounted');
  } else {
    if (!/\toverlay$/m.test(filesystems)) missing.push('overlayfs (CONFIG_OVERLAY_FS; try `modprobe overlay`)');
    if (!/\tcgroup2?$/m.test(filesystems)) missing.push('cgroups (CONFIG_CGROUPS)');
    if (!/\tdevpts$/m.test(filesystems)) missing.push('devpts (CONFIG_UNIX98_PTYS)');
  }
  return missing;
}

export function requireFeatures(): void {
  const m = missingFeatures();
  if (m.length > 0) throw new PaeneError('unsupported', `this kernel lacks what a context needs: ${m.join('; ')}`);
}
