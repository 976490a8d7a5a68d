// Builds the native programs in src/native/ into dist/native/.
// Static, so the helper never loads a shared library from a guest's root.
// First it generates the C headers of the TypeScript → C messages from their
// one description (src/proto/*.ts, compiled by tsc into dist/proto/), into
// dist/gen/, so the two sides read the same keys and arities.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist/native');
const genDir = path.join(root, 'dist/gen');
fs.mkdirSync(outDir, { recursive: true });
fs.mkdirSync(genDir, { recursive: true });

// the messages: every export of dist/proto/*.js that has name and keys (a TokenMessage)
// and every list of answer codes (a ReplyCodes: name and codes)
const { cHeader, cCodesHeader, cConstantsHeader } = await import(pathToFileURL(path.join(root, 'dist/proto/tokens.js')).href);
for (const f of fs.readdirSync(path.join(root, 'dist/proto')).filter((x) => x.endsWith('.js') && x !== 'tokens.js')) {
  const mod = await import(pathToFileURL(path.join(root, 'dist/proto', f)).href);
  for (const msg of Object.values(mod)) {
    if (!msg || typeof msg !== 'object' || !('name' in msg) || !('keys' in msg || 'codes' in msg || 'constants' in msg)) continue;
    const file = path.join(genDir, `${msg.name}.h`);
    const source = `src/proto/${f.replace(/\.js$/, '.ts')}`;
    const text = 'keys' in msg ? cHeader(msg, source) : 'codes' in msg ? cCodesHeader(msg, source) : cConstantsHeader(msg, source);
    // written only when it changed, so an unchanged message rebuilds nothing
    if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text);
  }
}
// and the constants both languages share (the default root, the name rule), and the BPF loader's
// program list (its prefixes, bounds and attach type names; the numbers are <linux/bpf.h>'s)
for (const [mod, fn, name] of [
  ['names', 'namesHeader', 'paene_names.h'],
  ['sock-attach', 'sockAttachHeader', 'sock_attach_list.h'],
]) {
  const gen = (await import(pathToFileURL(path.join(root, `dist/proto/${mod}.js`)).href))[fn];
  const file = path.join(genDir, name);
  const text = gen(`src/proto/${mod}.ts`);
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) fs.writeFileSync(file, text);
}

// The programs and their translation units (src/native/; the guest-side tools in src/native/tools/).
// paene-helper: the native part of the runtime (its monitor runs the fork back-off and loads the
// sock_addr programs); paene-front: the `paene` command's native front door (dist/native/paene);
// paene-runc: paene-runc's native front; paene-oci: paene-runc's container setup;
// paene-init: a context's pid 1 with no libc (every context keeps one alive);
// tools (copied into contexts or run beside them by checks and benchmarks): sysv-ipc, paene-bench,
// escape-probe, iso-load, net-probe; paene-iothrottle and paene-bpf run on the host.
const PROGRAMS = {
  'paene-helper': ['paene-helper.c', 'forkbackoff.c', 'sockattach.c', 'binds.c'],
  paene: ['paene-front.c'],
  'paene-init': ['paene-init.c'],
  'paene-log': ['paene-log.c'],
  'paene-runc': ['paene-runc.c'],
  'paene-oci': ['paene-oci.c'],
  'paene-iothrottle': ['paene-iothrottle.c'],
  'paene-bpf': ['paene-bpf.c', 'sockattach.c'],
  'sysv-ipc': ['tools/sysv-ipc.c'],
  'paene-bench': ['tools/paene-bench.c'],
  'escape-probe': ['tools/escape-probe.c'],
  'iso-load': ['tools/iso-load.c'],
  'net-probe': ['tools/net-probe.c'],
};
const inDir = (dir, ext) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(ext))
    .map((f) => path.join(dir, f));
const headers = [...inDir(path.join(root, 'src/native'), '.h'), ...inDir(genDir, '.h')];
const EXTRA = {
  'paene-init': [
    '-nostdlib',
    '-ffreestanding',
    '-fno-stack-protector',
    '-fno-asynchronous-unwind-tables',
    '-Os',
    '-Wl,--build-id=none',
    '-Wl,-z,noexecstack',
  ],
};
for (const [name, units] of Object.entries(PROGRAMS)) {
  const srcs = units.map((u) => path.join(root, 'src/native', u));
  const out = path.join(outDir, name);
  // A program is rebuilt when one of its units or any header (shared, or generated) is newer.
  const newest = Math.max(...srcs.map((s) => fs.statSync(s).mtimeMs), ...headers.map((h) => fs.statSync(h).mtimeMs));
  const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest;
  if (fresh) continue;
  const cc = process.env.CC ?? 'cc';
  const tmp = out + '.tmp';
  execFileSync(
    cc,
    [
      '-O2',
      '-static',
      '-Wall',
      '-Wextra',
      '-Werror',
      '-I',
      genDir,
      '-I',
      path.join(root, 'src/native'),
      ...(EXTRA[name] ?? []),
      '-o',
      tmp,
      ...srcs,
    ],
    { stdio: 'inherit' },
  );
  fs.renameSync(tmp, out);
}
