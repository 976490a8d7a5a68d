// Disk verbs: `du` (private bytes against the shared image) and `commit`.

import type { Command } from 'commander';
import { commitContext, contextDiskUse, type ContextDiskUse } from '../runtime/disk.js';
import { openImageStore } from '../runtime/open.js';
import { rootOf, runtimeOf } from './common.js';
import { formatBytes, formatTable, printJson } from './format.js';

export function registerDiskCommands(program: Command): void {
  program
    .command('du')
    .description("Show each context's private disk use (its copy-on-write layer) against the image it shares, and its disk limit")
    .argument('[names...]', 'contexts (default: all)')
    .option('--json', 'print JSON')
    .action(async (names: string[], o: { json?: boolean }, cmd: Command) => {
      const rt = runtimeOf(cmd);
      const store = openImageStore(rootOf(cmd));
      const rows: ContextDiskUse[] = [];
      for (const n of names.length ? names : rt.store.names()) rows.push(await contextDiskUse(rt, store, n));
      if (o.json) {
        printJson(rows);
        return;
      }
      if (rows.length === 0) {
        console.log('no contexts');
        return;
      }
      console.log(
        formatTable(rows, [
          { header: 'NAME', get: (r) => r.name },
          { header: 'IMAGE', get: (r) => r.image },
          { header: 'PRIVATE', get: (r) => formatBytes(r.privateBytes), align: 'right' },
          { header: 'INODES', get: (r) => r.privateInodes, align: 'right' },
          { header: 'SHARED', get: (r) => formatBytes(r.sharedBytes), align: 'right' },
          {
            header: 'DISK USED/LIMIT',
            get: (r) => (r.filesystem ? `${formatBytes(r.filesystem.bytesUsed)} / ${formatBytes(r.filesystem.bytesTotal)}` : '-'),
            align: 'right',
          },
          {
            header: 'INODES USED/LIMIT',
            get: (r) => (r.filesystem ? `${r.filesystem.inodesUsed} / ${r.filesystem.inodesTotal}` : '-'),
            align: 'right',
          },
        ]),
      );
    });

  program
    .command('commit')
    .description("Make a context's root filesystem a new image; every file it did not change stays shared")
    .argument('<context>')
    .requiredOption('--name <image>', 'name of the new image')
    .option('--json', 'print the new image as JSON')
    .action(async (context: string, o: { name: string; json?: boolean }, cmd: Command) => {
      const info = await commitContext(runtimeOf(cmd), openImageStore(rootOf(cmd)), context, o.name);
      if (o.json) printJson(info);
      else
        console.log(
          `committed context '${context}' as image '${info.name}' (${info.files} files, ${formatBytes(info.addedBytes ?? info.diskBytes)} new on disk)`,
        );
    });
}
