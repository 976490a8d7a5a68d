// The paene-runc executable's entry (bundled into dist/paene-runc.mjs).
import { main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`paene-runc: ${String(e)}\n`);
    process.exit(1);
  },
);
