// `paene net settings --...` and `PATCH /v1/net/settings`: the root's network
// settings changed in one place. What the words mean is the network model's
// (src/net/model.ts); that the walls of running contexts were made from the
// current settings, so those fields wait until they stop, is decided here.

import { PaeneError } from '../model/errors.js';
import { type NetSettings, canonicalIp, egressPoolChange, parseDnsList } from '../net/model.js';
import type { Runtime } from './runtime.js';

/** The changes, as the CLI's flags spell them (the API's body uses the same names). */
export interface NetSettingsWords {
  sharedPool?: string;
  bridge?: string;
  subnet?: string;
  /** host addresses contexts may connect to: replaces the list */
  publishHost?: string[];
  hostNetns?: string;
  /** auto | none | CIDR */
  egressPool?: string;
  /** IP[,IP] or `host` (the host's own resolvers) */
  dns?: string;
}

export const NET_SETTINGS_WORDS = ['sharedPool', 'bridge', 'subnet', 'publishHost', 'hostNetns', 'egressPool', 'dns'] as const;

/** Applies the words (none: nothing changes) and answers the settings as they are now. */
export function changeNetSettings(rt: Runtime, o: NetSettingsWords): NetSettings {
  const cur = rt.network.settings();
  const publish = o.publishHost ?? [];
  // the nameservers apply at each start: no need to stop anything for them
  const walls = o.sharedPool || o.bridge || o.subnet || publish.length || o.hostNetns || o.egressPool;
  if (!walls && !o.dns) return cur;
  if (walls && rt.list().some((s) => s.state === 'running' && s.net.mode !== 'host'))
    throw new PaeneError('wrong-state', 'stop the running contexts first: their walls and plumbing were made from the current settings');
  return rt.network.saveSettings({
    ...(o.sharedPool ? { sharedPool4: o.sharedPool } : {}),
    ...(o.bridge || o.subnet ? { bridge: { bridge: o.bridge ?? cur.bridge.bridge, subnet4: o.subnet ?? cur.bridge.subnet4 } } : {}),
    ...(publish.length ? { published: publish.map(canonicalIp) } : {}),
    ...(o.hostNetns ? { hostNetns: o.hostNetns } : {}),
    ...(o.egressPool ? egressPoolChange(o.egressPool) : {}),
    ...(o.dns ? { dns: o.dns.trim().toLowerCase() === 'host' ? undefined : parseDnsList([o.dns]) } : {}),
  });
}
