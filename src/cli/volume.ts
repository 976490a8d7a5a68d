// `paene volume create|ls|inspect|rm`: named volumes (docs/volumes.md).

import type { Command } from 'commander';
import { type VolumeInfo, createVolume, inspectVolume, listVolumes, removeVolume } from '../runtime/volumes.js';
import { runtimeOf } from './common.js';
import { formatTable, printJson } from './format.js';

export function registerVolumeCommands(program: Command): void {
  const volume = program
    .command('volume')
    .description(
      'Named volumes: directories under the state root that outlive contexts; `create --mount NAME:/path` binds one into a context at start',
    );

  volume
    .command('create')
    .description('Create an empty volume')
    .argument('<name>', 'volume name: 1-63 of [a-z0-9_-], starting with a letter or digit')
    .option('--json', 'print the volume as JSON')
    .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
      const v = await createVolume(runtimeOf(cmd), name);
      if (o.json) printJson(v);
      else console.log(`created volume '${v.name}' (${v.path})`);
    });

  volume
    .command('ls')
    .alias('list')
    .description('List the volumes and the contexts that mount each')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }, cmd: Command) => {
      const rows = listVolumes(runtimeOf(cmd));
      if (o.json) printJson(rows);
      else if (rows.length === 0) console.log('no volumes');
      else
        console.log(
          formatTable(rows, [
            { header: 'NAME', get: (v: VolumeInfo) => v.name },
            { header: 'CREATED', get: (v: VolumeInfo) => (v.problem ? `? (${v.problem})` : v.created) },
            { header: 'USED BY', get: (v: VolumeInfo) => v.usedBy.join(',') || '-' },
          ]),
        );
    });

  volume
    .command('inspect')
    .description('Show a volume: its data directory on the host and the contexts whose config mounts it')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action((name: string, o: { json?: boolean }, cmd: Command) => {
      const v = inspectVolume(runtimeOf(cmd), name);
      if (o.json) printJson(v);
      else
        console.log(
          `name: ${v.name}\ncreated: ${v.created || '?'}\npath: ${v.path}\nused by: ${v.usedBy.join(', ') || '-'}` +
            (v.problem ? `\nproblem: ${v.problem}` : ''),
        );
    });

  volume
    .command('rm')
    .description('Remove a volume and its data; refused while any context (running or not) mounts it')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }, cmd: Command) => {
      await removeVolume(runtimeOf(cmd), name);
      if (o.json) printJson({ name, removed: true });
      else console.log(`removed volume '${name}'`);
    });
}
