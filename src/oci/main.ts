// The paene-runc executable's entry (bundled into dist/paene-runc.mjs): a call
// (from the native front when no planner serves, or run directly), or the
// warm planner of a state root (src/oci/planner.ts), which the front starts.
import { fileURLToPath } from 'node:url';
import { main } from './cli.js';
import { serve } from './planner.js';

const argv = process.argv.slice(2);
const done = argv[0] === '__planner' && argv[1] ? serve(argv[1], fileURLToPath(import.meta.url)).then(() => 0) : main(argv);
done.then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`paene-runc: ${String(e)}\n`);
    process.exit(1);
  },
);
