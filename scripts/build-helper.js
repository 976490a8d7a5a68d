// Builds the native programs in src/native/ into dist/native/.
// Static, so the helper never loads a shared library from a guest's root.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist/native');
fs.mkdirSync(outDir, { recursive: true });
// paene-helper: the native part of the runtime; paene-front: the `paene` command's native front door
// (dist/native/paene); sysv-ipc: a test tool copied into contexts.
// paene-init: a context's pid 1 with no libc (every context keeps one alive).
const headers = fs.readdirSync(path.join(root, 'src/native')).filter((f) => f.endsWith('.h')).map((f) => path.join(root, 'src/native', f));
const outName = { 'paene-front': 'paene' };
const EXTRA = { 'paene-init': ['-nostdlib', '-ffreestanding', '-fno-stack-protector', '-fno-asynchronous-unwind-tables', '-Os', '-Wl,--build-id=none', '-Wl,-z,noexecstack'] };
for (const name of ['paene-helper', 'paene-front', 'paene-init', 'sysv-ipc', 'paene-bench', 'escape-probe', 'paene-iothrottle', 'iso-load', 'paene-bpf', 'net-probe', 'paene-oci']) {
  const src = path.join(root, 'src/native', name + '.c');
  const out = path.join(outDir, outName[name] ?? name);
  // A program is rebuilt when its source or any header beside it is newer (paene-bpf and paene-helper share sockattach.h).
  const newest = Math.max(fs.statSync(src).mtimeMs, ...headers.map((h) => fs.statSync(h).mtimeMs));
  const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest;
  if (fresh) continue;
  const cc = process.env.CC ?? 'cc';
  const tmp = out + '.tmp';
  execFileSync(cc, ['-O2', '-static', '-Wall', '-Wextra', '-Werror', ...(EXTRA[name] ?? []), '-o', tmp, src], { stdio: 'inherit' });
  fs.renameSync(tmp, out);
}
