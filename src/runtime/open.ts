// Wires the runtime to its collaborators: the image store and the default policy.

import { ImageStore } from '../image/store.js';
import { ensureBaseImage } from '../image/base.js';
import { Layout } from './layout.js';
import { type ImageSource, Runtime } from './runtime.js';

export const DEFAULT_IMAGE = 'base';

export function storeImageSource(store: ImageStore): ImageSource {
  return {
    async rootfsOf(image: string): Promise<string> {
      if (image === DEFAULT_IMAGE && !store.has(image)) await ensureBaseImage(store);
      return store.get(image).rootfs;
    },
  };
}

export function openImageStore(root: string): ImageStore {
  return new ImageStore(new Layout(root).imagesDir);
}

export function openRuntime(root: string): Runtime {
  return new Runtime({ root, images: storeImageSource(openImageStore(root)) });
}
