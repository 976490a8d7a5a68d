// `paene serve`: the resident API (src/api/server.ts, docs/api.md).

import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { PaeneError } from '../model/errors.js';
import { requireRoot } from '../kernel/features.js';
import { ApiServer, apiSocket } from '../api/server.js';
import { runtimeOf } from './common.js';
import { jobsOf } from './many.js';

/** A group name or number as a gid (getent knows the host's groups). */
function gidOf(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const r = spawnSync('getent', ['group', group], { encoding: 'utf8' });
  const gid = r.status === 0 ? Number(r.stdout.split(':')[2]) : NaN;
  if (!Number.isInteger(gid)) throw new PaeneError('not-found', `no group named '${group}'`);
  return gid;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'Run the JSON API on a unix socket (ROOT/run/api.sock), root only unless --group; stops on SIGINT/SIGTERM. See docs/api.md',
    )
    .option('--group <group>', 'let this group use the socket too (mode 0660)')
    .option('--socket <path>', 'listen here instead of ROOT/run/api.sock')
    .option('--autostart', 'once listening, start the contexts `paene autostart` starts (docs/services.md), each with its event')
    .option('-j, --jobs <n>', 'with --autostart: contexts started at once (default: 2 × CPUs)')
    .action(async (o: { group?: string; socket?: string; autostart?: boolean; jobs?: string }, cmd: Command) => {
      requireRoot('serving the API');
      const jobs = o.autostart ? jobsOf(o) : undefined;
      const rt = runtimeOf(cmd);
      const server = new ApiServer(rt, { socket: o.socket ?? apiSocket(rt), gid: o.group === undefined ? undefined : gidOf(o.group) });
      await server.listen();
      process.stderr.write(`paene: serving the API on ${o.socket ?? apiSocket(rt)} (docs/api.md)\n`);
      const autostart = o.autostart
        ? server
            .autostart(jobs, (r) =>
              process.stderr.write(
                r.outcome.ok ? `paene: autostart: started '${r.name}'\n` : `paene: autostart: ${r.name}: ${r.outcome.error.message}\n`,
              ),
            )
            .then((all) => {
              const failed = all.filter((r) => !r.outcome.ok).length;
              process.stderr.write(`paene: autostart: ${all.length - failed} started${failed ? `, ${failed} failed` : ''}\n`);
            })
        : undefined;
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await autostart; // the starts under way finish before the service goes
      await server.close();
    });
}
