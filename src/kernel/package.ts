// Where paene's own files are: the package root (with rootfs/ and bin/) and
// the native programs built into dist/native/.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PaeneError } from '../model/errors.js';

/** The package root: the nearest directory above this file with a package.json (src/, dist/ or the CLI bundle alike). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** A program built from src/native/ by `npm run build` (dist/native/NAME). */
export function nativePath(name: string): string {
  const p = path.join(packageRoot(), 'dist', 'native', name);
  if (!fs.existsSync(p)) {
    throw new PaeneError('internal', `the native program ${name} is missing at ${p}: run 'npm run build'`);
  }
  return p;
}
