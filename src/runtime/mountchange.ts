// `paene config NAME --mount/--unmount`: a context's mount list changed in
// its config; the change takes effect at its next start (docs/volumes.md).

import type { ContextConfig } from '../context/config.js';
import { PaeneError } from '../model/errors.js';
import { type MountSpec, isVolumeSource, validateMounts, validateTarget } from '../model/mounts.js';
import { checkMounts, missingVolume } from './mounts.js';
import { volumeMissing } from './volumes.js';
import type { Runtime } from './runtime.js';

/**
 * Adds mounts (one on a destination already mounted replaces it) and removes
 * the mounts on `unmount` destinations, under the context's lock. A volume
 * named is checked under the context list's lock after the config is
 * written (and the write undone if the volume is gone): a `volume rm` reads
 * every config and removes under that lock, so it either sees this one or
 * removed the volume before this check.
 */
export async function changeMounts(
  rt: Runtime,
  name: string,
  add: readonly MountSpec[],
  unmount: readonly string[],
): Promise<ContextConfig> {
  const targets = unmount.map(validateTarget);
  let before: ContextConfig | undefined;
  return rt.changeConfig(
    name,
    (cur) => {
      before = cur;
      const had = cur.mounts ?? [];
      for (const t of targets)
        if (!had.some((m) => m.target === t)) throw new PaeneError('not-found', `context '${name}' has no mount on ${t}`);
      const kept = had.filter((m) => !targets.includes(m.target) && !add.some((a) => a.target === m.target));
      const mounts = validateMounts([...kept, ...add], `context '${name}'`);
      checkMounts(
        rt.layout,
        add.filter((m) => !isVolumeSource(m.source)),
      );
      const { mounts: _old, ...rest } = cur;
      return mounts.length > 0 ? { ...rest, mounts } : rest;
    },
    {
      after: () =>
        rt.withListLock(async () => {
          const missing = add.find((m) => isVolumeSource(m.source) && volumeMissing(rt.layout, m.source));
          if (!missing) return;
          if (before) rt.store.writeConfig(before);
          throw missingVolume(missing.source, missing.target);
        }),
    },
  );
}
