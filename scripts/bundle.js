// Bundles the CLI into one file (dist/paene.mjs). Node spends most of a CLI
// call resolving and loading ~50 ES modules; one file cuts ~40 ms per call,
// which is what a user (and the lifecycle benchmark) pays on every verb.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/cli/main.js'],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: 'dist/paene.mjs',
  // commander and tar-stream's dependencies are CommonJS: give the bundle a require().
  banner: { js: "import { createRequire as __paeneRequire } from 'node:module'; const require = __paeneRequire(import.meta.url);" },
  logLevel: 'warning',
});
