// `paene image …`: build, import, export, list, remove images and show how much they share.

import { parseCount, parseSize } from '../model/units.js';
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { PaeneError, errnoOf } from '../model/errors.js';
import { Layout } from '../kernel/layout.js';
import { buildBaseImage } from '../image/base.js';
import { DEFAULT_IMAGE, ImageStore, validateImageName, type ImageInfo } from '../image/store.js';
import { EXPORT_FORMATS, type ExportFormat } from '../image/ociexport.js';
import { parsePlatform, showPlatform } from '../image/ociplan.js';
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
    .description('import an image: a root filesystem tar, an OCI image layout (directory or tar) or a docker-archive')
    .argument('<source>', 'archive file (plain, gzip or zstd), an OCI layout directory, or - to read stdin')
    .requiredOption('--name <name>', 'name of the new image')
    .option('--platform <os/arch[/variant]>', "which image of a multi-platform index to take (default: this host's)")
    .option(
      '--tag <name>',
      'which image to take from an archive that holds several (docker save a b; an OCI layout with several ref names)',
    )
    .option('--max-files <n>', 'refuse archives with more entries than this', '1000000')
    .option('--max-bytes <size>', 'refuse archives with more file data than this (e.g. 10G)', '64G')
    .option('--allow-devices', 'create device nodes the archive carries (skipped with a warning by default)')
    .addHelpText(
      'after',
      '\nThe kind of archive is told by its content: a tar whose first entry is oci-layout,\n' +
        'index.json or blobs/ is an OCI image layout (skopeo copy … oci-archive:FILE), one that\n' +
        'starts with manifest.json or a layer directory is a docker-archive (docker save, podman\n' +
        'save); so is a tar file with a top-level manifest.json or index.json anywhere in it (a piped\n' +
        'or compressed one is refused as ambiguous); anything else is a root filesystem. Layers are applied in order with the OCI\n' +
        'rules (.wh.NAME deletes, .wh..wh..opq makes a directory opaque, later layers win), and\n' +
        'every blob is checked against its sha256 and size. The image config (Env, Cmd,\n' +
        'Entrypoint, WorkingDir, User, ExposedPorts, Labels) is kept: `paene image inspect`.\n' +
        '\nEvery archive is treated as hostile: absolute names, "..", writing through symlinks, hard\n' +
        'links to unknown targets and oversized names are refused in every layer; nothing is\n' +
        'written outside the new image, and a failed import leaves the store as it was.\n',
    )
    .action(
      async (
        file: string,
        o: { name: string; platform?: string; tag?: string; maxFiles: string; maxBytes: string; allowDevices?: boolean },
      ) => {
        validateImageName(o.name);
        const opts = {
          maxFiles: parseCount(o.maxFiles.replace(/_/g, ''), '--max-files', 1),
          maxBytes: parseSize(o.maxBytes, '--max-bytes'),
          allowDevices: o.allowDevices === true,
          onWarning: warn,
          ...(o.platform !== undefined ? { platform: o.platform } : {}),
          ...(o.tag !== undefined ? { tag: o.tag } : {}),
        };
        if (o.platform !== undefined) parsePlatform(o.platform);
        const st = file === '-' ? undefined : fs.statSync(file, { throwIfNoEntry: false });
        let info: ImageInfo;
        if (file !== '-') {
          if (st === undefined) throw new PaeneError('not-found', `no such file or directory: ${file}`);
          if (!st.isFile() && !st.isDirectory() && !st.isFIFO())
            throw new PaeneError('invalid-argument', `${file} is not a file, a directory or a pipe`);
          // progress by file data written into the image (an archive file may be read in place, out of order)
          const { bar, onProgress } = progress(`importing ${o.name}`);
          const s = store();
          const source = `file:${path.resolve(file)}`;
          try {
            if (st.isDirectory()) info = await s.importLayout(file, o.name, { ...opts, onProgress });
            else if (st.isFile()) info = await s.importFile(file, o.name, { ...opts, onProgress });
            else
              info = await s.importTar(fs.createReadStream(file, { highWaterMark: 1024 * 1024 }), o.name, { ...opts, onProgress, source }); // a named pipe: read as a stream
          } finally {
            bar.done();
          }
        } else {
          if (process.stdin.isTTY)
            throw new PaeneError('invalid-argument', 'refusing to read an archive from a terminal; pipe one in or give a FILE');
          const bar = new ProgressBar(`importing ${o.name}`);
          let read = 0;
          process.stdin.on('data', (c: Buffer) => {
            read += c.length;
            bar.update(read, formatBytes(read));
          });
          try {
            info = await store().importTar(process.stdin, o.name, { ...opts, source: 'stdin' });
          } finally {
            bar.done();
          }
        }
        const layers = info.config
          ? `, ${info.config.layers.length} layer${info.config.layers.length === 1 ? '' : 's'} (${info.format}, ${showPlatform(info.config.platform)})`
          : '';
        process.stdout.write(
          `imported image ${info.name}: ${info.files} entries, ${formatBytes(info.logicalBytes)}${layers}, ${formatBytes(info.diskBytes)} on disk after sharing\n`,
        );
      },
    );

  image
    .command('export')
    .description('write an image as an archive (to stdout unless -o): OCI layout tar, docker-archive or root filesystem tar')
    .argument('<name>', 'image to export')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .addOption(
      new Option(
        '--format <format>',
        'oci: an OCI image layout tar (skopeo oci-archive:, umoci); docker: a docker-archive (docker load); tar: the root filesystem',
      )
        .choices(EXPORT_FORMATS)
        .default('tar'),
    )
    .addHelpText(
      'after',
      '\nAn oci or docker export is one layer (the merged tree) with the image config the image\nwas imported with (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Labels).\n',
    )
    .action(async (name: string, o: { output?: string; format: ExportFormat }) => {
      const s = store();
      s.rootfsOf(name);
      if (o.output === undefined) {
        if (process.stdout.isTTY)
          throw new PaeneError('invalid-argument', 'refusing to write a tar to a terminal; use -o FILE or redirect stdout');
        try {
          await s.exportArchive(name, o.format, process.stdout);
        } catch (e) {
          // The reader went away (`| head`): not an error of ours, like any Unix filter.
          if (errnoOf(e) !== 'EPIPE') throw e;
        }
        return;
      }
      const tmp = `${o.output}.paene-${process.pid}.tmp`;
      try {
        await s.exportArchive(name, o.format, fs.createWriteStream(tmp));
        fs.renameSync(tmp, o.output);
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        throw e;
      }
    });

  image
    .command('inspect')
    .description('show an image: where it came from, its platform and layers, and the config a context runs by default')
    .argument('<name>', 'image to inspect')
    .option('--json', 'print JSON')
    .action((name: string, o: { json?: boolean }) => {
      const i = store().get(name);
      const view = { ...i, contexts: users(name) };
      if (o.json) {
        printJson(view);
        return;
      }
      const c = i.config;
      const q = (a: string[]): string => (a.length ? JSON.stringify(a) : '-');
      const lines: Array<[string, string]> = [
        ['name', i.name],
        ['format', i.format],
        ['source', i.source],
        ['created', i.created],
        ['files', `${i.files} entries, ${formatBytes(i.logicalBytes)}, ${formatBytes(i.diskBytes)} on disk after sharing`],
        ['contexts', view.contexts.length ? view.contexts.join(', ') : '-'],
      ];
      if (c) {
        lines.push(['platform', showPlatform(c.platform)]);
        lines.push(['entrypoint', q(c.run.entrypoint)]);
        lines.push(['cmd', q(c.run.cmd)]);
        lines.push(['workingdir', c.run.workingDir ?? '-']);
        lines.push(['user', c.run.user ?? '-']);
        lines.push(['env', c.run.env.length ? c.run.env.join('\n            ') : '-']);
        lines.push(['ports', c.run.exposedPorts.join(', ') || '-']);
        lines.push([
          'labels',
          Object.entries(c.run.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join('\n            ') || '-',
        ]);
        lines.push([
          'layers',
          c.layers.map((l, n) => `${n + 1}. ${l.digest} ${formatBytes(l.size)} ${l.compression}`).join('\n            ') || '-',
        ]);
      } else {
        lines.push(['config', '- (a root filesystem tar carries none: `paene exec` needs a command)']);
      }
      process.stdout.write(lines.map(([k, v]) => `${k.padEnd(11)} ${v}`).join('\n') + '\n');
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
