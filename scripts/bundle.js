// Bundles the CLI (dist/paene.mjs and its chunks in dist/chunks/). Node
// spends most of a CLI call resolving, loading and compiling modules: one
// entry with a chunk per verb group (src/cli/main.ts loads only the group of
// the verb that runs) cuts that to the code the call needs.
import { build } from 'esbuild';
import fs from 'node:fs';

fs.rmSync('dist/chunks', { recursive: true, force: true }); // no stale chunks from an earlier build
await build({
  entryPoints: { paene: 'dist/cli/main.js' },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  // commander and tar-stream's dependencies are CommonJS: give the bundle a require().
  banner: { js: "import { createRequire as __paeneRequire } from 'node:module'; const require = __paeneRequire(import.meta.url);" },
  logLevel: 'warning',
});
