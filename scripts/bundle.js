// Bundles the CLI into one file (dist/paene.mjs). Node spends most of a CLI
// call resolving and loading ~50 ES modules; one file cuts ~40 ms per call,
// which is what a user (and the lifecycle benchmark) pays on every verb.
import { build } from 'esbuild';

for (const [entry, out] of [
  ['dist/cli/main.js', 'dist/paene.mjs'],
  // paene-runc: containerd's shim calls it for every state/kill/exec, so it too is one file
  ['dist/oci/main.js', 'dist/paene-runc.mjs'],
]) {
await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: out,
  // commander and tar-stream's dependencies are CommonJS: give the bundle a require().
  banner: { js: "import { createRequire as __paeneRequire } from 'node:module'; const require = __paeneRequire(import.meta.url);" },
  logLevel: 'warning',
});
}
