// `paene check network`: escape attempts against each network model, judged
// from outside, and the admin cases that must work.

import fs from 'node:fs';
import type { Command } from 'commander';
import { PaeneError } from '../model/errors.js';
import { type NetRow, egressSuite, isolatedSuite, sharedSuite, summarize } from '../check/network.js';
import { EXIT_CHECK_FAILED, runtimeOf } from './common.js';
import { formatTable } from './format.js';

const MODES = ['shared', 'none', 'private', 'egress'] as const;

export function registerNetworkCheck(check: Command): void {
  check
    .command('network')
    .description(
      'Network escape attempts per model (host loopback, abstract sockets, binds, raw sockets, spoofing, socket lists) and the admin cases; ' +
        'egress: the walls of contexts with an egress pool, in a world of two network namespaces the check makes (never the real uplink)',
    )
    .option(
      '--modes <list>',
      `comma-separated subset of: ${MODES.join(', ')} (private needs ip and nft, and adds a gateway link, ports and nft tables for its run: see docs/network.md; egress runs in a scratch root of its own)`,
      'shared,none',
    )
    .option('--json <file>', 'also write the results as JSON to FILE')
    .action(async (o: { modes: string; json?: string }, cmd: Command) => {
      const modes = o.modes.split(',').map((s) => s.trim());
      for (const m of modes)
        if (!(MODES as readonly string[]).includes(m))
          throw new PaeneError('invalid-argument', `unknown mode '${m}': use ${MODES.join(', ')}`);
      const rt = runtimeOf(cmd);
      const log = (s: string) => process.stderr.write(s + '\n');
      const rows: NetRow[] = [];
      for (const m of modes) {
        log(`network ${m} ...`);
        if (m === 'shared') rows.push(...(await sharedSuite(rt, { log })));
        else if (m === 'egress') rows.push(...(await egressSuite({ log })));
        else rows.push(...(await isolatedSuite(rt, m as 'none' | 'private', { log })));
      }
      console.log(
        formatTable(rows, [
          { header: 'MODE', get: (r: NetRow) => r.mode },
          { header: 'KIND', get: (r: NetRow) => r.kind },
          { header: 'ATTEMPT', get: (r: NetRow) => r.attempt },
          { header: 'OBSERVED', get: (r: NetRow) => r.observed.slice(0, 90) },
          { header: 'VERDICT', get: (r: NetRow) => r.verdict },
        ]),
      );
      const s = summarize(rows);
      if (o.json) fs.writeFileSync(o.json, JSON.stringify({ finished: new Date().toISOString(), rows, summary: s }, null, 2) + '\n');
      console.log(
        `\n${s.escaped} escaped, ${s.blocked} blocked, ${s.gaps} known gap / not provable; admin: ${s.adminWorked} work, ${s.adminFailed} failed`,
      );
      if (s.escaped > 0 || s.adminFailed > 0) process.exitCode = EXIT_CHECK_FAILED;
    });
}
