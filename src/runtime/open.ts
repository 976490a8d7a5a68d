// Wires the runtime to its collaborators: the image store and the default policy.

import { DEFAULT_SECCOMP_POLICY, SHARED_NET_SECCOMP_POLICY, buildSeccompFilter, guestInitSeccompPolicy } from '../seccomp/filter.js';
import type { ContextConfig } from '../context/config.js';
import { resolveUser } from '../image/ociplan.js';
import { DEFAULT_IMAGE, ImageStore } from '../image/store.js';
import { ensureBaseImage } from '../image/base.js';
import { Layout } from '../kernel/layout.js';
import { type ImageDefaults, type ImageSource, type Policy, Runtime } from './runtime.js';

export function storeImageSource(store: ImageStore): ImageSource {
  return {
    async rootfsOf(image: string): Promise<string> {
      if (image === DEFAULT_IMAGE && !store.has(image)) await ensureBaseImage(store);
      return store.rootfsOf(image); // not get(): that walks the tree for its size on every start
    },
    defaultsOf(image: string): ImageDefaults | undefined {
      const run = store.runConfigOf(image);
      if (!run) return undefined;
      const spec = run.user;
      if (!spec) return { run };
      return { run, user: () => resolveUser(spec, store.readTreeFile(image, 'etc/passwd'), store.readTreeFile(image, 'etc/group')) };
    },
    resolveUser(image: string, spec: string) {
      return resolveUser(spec, store.readTreeFile(image, 'etc/passwd'), store.readTreeFile(image, 'etc/group'));
    },
  };
}

export function openImageStore(root: string): ImageStore {
  return new ImageStore(new Layout(root).imagesDir);
}

const filters = new Map<string, Buffer>();

/**
 * The default policy: every context process runs under the default seccomp
 * filter (no user namespaces, no kernel keyrings, bpf, perf, module or clock
 * calls, ...), except in the privileged profile, which asks for everything.
 * On the host's shared network stack sock_diag netlink is denied too; under
 * the guest's own init, reboot(2) (which ends only the context) is allowed.
 */
export const defaultPolicy: Policy = {
  seccomp(config: ContextConfig): Buffer | undefined {
    if (config.caps.profile === 'privileged') return undefined;
    const shared = config.net.mode === 'shared';
    const guest = config.init?.kind === 'guest';
    const key = `${shared}:${guest}`;
    let f = filters.get(key);
    if (!f) {
      const base = shared ? SHARED_NET_SECCOMP_POLICY : DEFAULT_SECCOMP_POLICY;
      f = buildSeccompFilter(guest ? guestInitSeccompPolicy(base) : base);
      filters.set(key, f);
    }
    return f;
  },
};

export function openRuntime(root: string): Runtime {
  return new Runtime({ root, images: storeImageSource(openImageStore(root)), policy: defaultPolicy });
}
