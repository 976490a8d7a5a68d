// `paene cp [NAME:]SRC [NAME:]DST`: files into and out of a running context (runtime/copy.ts).

import type { Command } from 'commander';
import { PaeneError } from '../model/errors.js';
import { formatBytes } from '../model/units.js';
import { copyIn, copyOut, parseCopyEnd } from '../runtime/copy.js';
import { runtimeOf } from './common.js';

export function registerCopyCommands(program: Command): void {
  program
    .command('cp')
    .description(
      'Copy files between the host and a running context, streamed as a tar: paene cp web:/etc/hosts . ; paene cp ./site web:/www',
    )
    .argument('<src>', 'NAME:PATH in a context, or a host path')
    .argument('<dst>', 'NAME:PATH in a context, or a host path (an existing directory receives SRC under its own name)')
    .option('-a, --archive', "keep the files' owners (uid/gid) as they are in the source")
    .option('-q, --quiet', 'print nothing on success')
    .addHelpText(
      'after',
      "\nOne side is the host, the other a running context. The context's side runs inside it\n" +
        '(its tar, or busybox tar, through exec): its own view of its paths decides, so a symlink\n' +
        'of the guest never reaches the host. What comes out of a context is extracted as hostile:\n' +
        'only names under SRC, nothing through a symlink, no device nodes or FIFOs, no set-id bits.\n' +
        'A host path with a colon is written ./a:b.\n',
    )
    .action(async (srcArg: string, dstArg: string, o: { archive?: boolean; quiet?: boolean }, cmd: Command) => {
      const src = parseCopyEnd(srcArg);
      const dst = parseCopyEnd(dstArg);
      if (src.context && dst.context)
        throw new PaeneError('invalid-argument', 'copy between two contexts through the host: paene cp A:SRC DIR; paene cp DIR/NAME B:DST');
      if (!src.context && !dst.context) throw new PaeneError('invalid-argument', 'one side names a context: NAME:PATH');
      const rt = runtimeOf(cmd);
      const opts = { archive: o.archive, onWarning: (m: string) => process.stderr.write(`paene: warning: ${m}\n`) };
      const t0 = process.hrtime.bigint();
      const r = src.context
        ? await copyOut(rt, src.context, src.path, dst.path, opts)
        : await copyIn(rt, src.path, dst.context as string, dst.path, opts);
      if (o.quiet) return;
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const rate = r.bytes > 0 && s > 0 ? `, ${formatBytes(Math.round(r.bytes / s))}/s` : '';
      const skipped = r.skipped ? `, ${r.skipped} skipped` : '';
      console.log(`copied ${srcArg} to ${dstArg}${src.context ? ` (${r.entries} entries, ${formatBytes(r.bytes)}${skipped}${rate})` : ''}`);
    });
}
