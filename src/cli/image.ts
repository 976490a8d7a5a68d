// `paene image …`: build, import, export, list, remove images and show how much they share.

import { parseCount, parseSize } from '../core/units.js';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { PaeneError, errnoOf } from '../core/errors.js';
import { Layout } from '../runtime/layout.js';
import { buildBaseImage } from '../image/base.js';
import { DEFAULT_IMAGE, ImageStore, validateImageName, type ImageInfo } from '../image/store.js';
import { formatBytes, formatTable, printJson, ProgressBar } from './format.js';


const warn = (msg: string): void => {
  process.stderr.write(`paene: warning: ${msg}\n`);
};

function progress(label: string, total?: number): { bar: ProgressBar; onProgress: (bytes: number, files: number) => void } {
  const bar = new ProgressBar(label, total);
  return { bar, onProgress: (bytes, files) => bar.update(bytes, `${formatBytes(bytes)}, ${files} entries`) };
}

export function registerImageCommands(program: Command, getRoot: () => string, usedBy?: (image: string) => string[]): void {
  const store = (): ImageStore => new ImageStore(new Layout(getRoot()).imagesDir);
  const users = (name: string): string[] => (usedBy ? usedBy(name) : []);

  const image = program
    .command('image')
    .description('manage images: root filesystems shared by contexts, stored once per file content')
    .addHelpText(
      'after',
      '\nImages live in a content-addressed store under ROOT/images: a file that several images\n' +
        'carry (same content, mode, owner and mtime) is one inode on disk and one copy in the page\n' +
        'cache. Contexts use an image as the read-only lower layer of their overlay root.\n',
    );

  image
    .command('build')
    .description(`assemble the base image from the host's programs (recipe: rootfs/manifest)`)
    .option('--name <name>', 'name of the image', DEFAULT_IMAGE)
    .action(async (o: { name: string }) => {
      validateImageName(o.name);
      const { bar, onProgress } = progress(`building ${o.name}`);
      try {
        const info = await buildBaseImage(store(), { name: o.name, onProgress, onWarning: warn });
        bar.done();
        process.stdout.write(`built image ${info.name}: ${info.files} entries, ${formatBytes(info.logicalBytes)}\n`);
      } finally {
        bar.done();
      }
    });

  image
    .command('import')
    .description('import a root filesystem from a tar (plain or gzip; FILE or - for stdin)')
    .argument('<file>', 'tar or tar.gz file, or - to read stdin')
    .requiredOption('--name <name>', 'name of the new image')
    .option('--max-files <n>', 'refuse archives with more entries than this', '1000000')
    .option('--max-bytes <size>', 'refuse archives with more file data than this (e.g. 10G)', '64G')
    .option('--allow-devices', 'create device nodes the archive carries (skipped with a warning by default)')
    .addHelpText(
      'after',
      '\nEvery archive is treated as hostile: absolute names, "..", writing through symlinks, hard\n' +
        'links to unknown targets and oversized names are refused; nothing is written outside the\n' +
        'new image, and a failed import leaves the store as it was.\n',
    )
    .action(async (file: string, o: { name: string; maxFiles: string; maxBytes: string; allowDevices?: boolean }) => {
      validateImageName(o.name);
      const maxFiles = parseCount(o.maxFiles.replace(/_/g, ''), '--max-files', 1);
      const maxBytes = parseSize(o.maxBytes, '--max-bytes');
      let input: NodeJS.ReadableStream;
      let total: number | undefined;
      if (file === '-') {
        if (process.stdin.isTTY) throw new PaeneError('invalid-argument', 'refusing to read a tar from a terminal; pipe one in or give a FILE');
        input = process.stdin;
      } else {
        const st = fs.statSync(file, { throwIfNoEntry: false });
        if (!st?.isFile()) throw new PaeneError('not-found', `no such file: ${file}`);
        input = fs.createReadStream(file);
        total = st.size;
      }
      // The bar follows bytes read from the file, which is what a gzip'd total means.
      const bar = new ProgressBar(`importing ${o.name}`, total);
      let read = 0;
      input.on('data', (c: Buffer) => {
        read += c.length;
        bar.update(read, formatBytes(read));
      });
      try {
        const info = await store().importTar(input, o.name, {
          maxFiles,
          maxBytes,
          allowDevices: o.allowDevices === true,
          onWarning: warn,
          source: file === '-' ? 'stdin' : `tar:${path.resolve(file)}`,
        });
        bar.done();
        process.stdout.write(`imported image ${info.name}: ${info.files} entries, ${formatBytes(info.logicalBytes)}, ${formatBytes(info.diskBytes)} on disk after sharing\n`);
      } finally {
        bar.done();
      }
    });

  image
    .command('export')
    .description('write an image as a tar (to stdout unless -o)')
    .argument('<name>', 'image to export')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (name: string, o: { output?: string }) => {
      const s = store();
      s.rootfsOf(name);
      if (o.output === undefined) {
        if (process.stdout.isTTY) throw new PaeneError('invalid-argument', 'refusing to write a tar to a terminal; use -o FILE or redirect stdout');
        try {
          await s.exportTar(name, process.stdout);
        } catch (e) {
          // The reader went away (`| head`): not an error of ours, like any Unix filter.
          if (errnoOf(e) !== 'EPIPE') throw e;
        }
        return;
      }
      const tmp = `${o.output}.paene-${process.pid}.tmp`;
      try {
        await s.exportTar(name, fs.createWriteStream(tmp));
        fs.renameSync(tmp, o.output);
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        throw e;
      }
    });

  image
    .command('ls')
    .alias('list')
    .description('list images: entries, logical size, size on disk after sharing, contexts using each')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const rows = store()
        .list()
        .map((i: ImageInfo) => ({ ...i, contexts: users(i.name) }));
      if (o.json) {
        printJson(rows);
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('no images (build the base image with `paene image build`)\n');
        return;
      }
      process.stdout.write(
        formatTable(rows, [
          { header: 'NAME', get: (r) => r.name },
          { header: 'FILES', get: (r) => r.files, align: 'right' },
          { header: 'SIZE', get: (r) => formatBytes(r.logicalBytes), align: 'right' },
          { header: 'ON DISK', get: (r) => formatBytes(r.diskBytes), align: 'right' },
          { header: 'CONTEXTS', get: (r) => (r.contexts.length ? r.contexts.join(',') : '-') },
          { header: 'CREATED', get: (r) => r.created.replace(/\.\d+Z$/, 'Z') },
          { header: 'SOURCE', get: (r) => r.source },
        ]) + '\n',
      );
    });

  image
    .command('rm')
    .alias('remove')
    .description('remove an image (refused while a context uses it); unshared files are freed')
    .argument('<name>', 'image to remove')
    .action((name: string) => {
      store().remove(name, users(name));
      process.stdout.write(`removed image ${name}\n`);
    });

  image
    .command('du')
    .description("the store's logical vs physical bytes, the sharing ratio, and the most-shared files")
    .option('--json', 'print JSON')
    .option('--top <n>', 'how many shared files to show', '10')
    .action((o: { json?: boolean; top: string }) => {
      const u = store().du(parseCount(o.top, '--top', 1));
      if (o.json) {
        printJson(u);
        return;
      }
      const out: string[] = [];
      out.push(`images:         ${u.images}`);
      out.push(`objects:        ${u.objects}${u.orphanObjects ? ` (${u.orphanObjects} unused, removed by the next import or rm)` : ''}`);
      out.push(`logical bytes:  ${formatBytes(u.logicalBytes)}  (every image with private copies)`);
      out.push(`unique bytes:   ${formatBytes(u.uniqueBytes)}  (each file content once)`);
      out.push(`on disk:        ${formatBytes(u.physicalBytes)}  (blocks of every inode in the store)`);
      out.push(`sharing ratio:  ${u.sharingRatio.toFixed(2)}x`);
      if (u.perImage.length) {
        out.push('');
        out.push(
          formatTable(u.perImage, [
            { header: 'IMAGE', get: (r) => r.name },
            { header: 'FILES', get: (r) => r.files, align: 'right' },
            { header: 'LOGICAL', get: (r) => formatBytes(r.logicalBytes), align: 'right' },
            { header: 'ON DISK', get: (r) => formatBytes(r.diskBytes), align: 'right' },
            { header: 'EXCLUSIVE', get: (r) => formatBytes(r.exclusiveBytes), align: 'right' },
          ]),
        );
      }
      if (u.mostShared.length) {
        out.push('');
        out.push(
          formatTable(u.mostShared, [
            { header: 'MOST SHARED', get: (r) => r.path },
            { header: 'SIZE', get: (r) => formatBytes(r.bytes), align: 'right' },
            { header: 'LINKS', get: (r) => r.links, align: 'right' },
            { header: 'IMAGES', get: (r) => r.images.join(',') },
          ]),
        );
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
