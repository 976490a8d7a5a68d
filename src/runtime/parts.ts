// What the helpers of the lifecycle (the fork back-off, the I/O throttler)
// need of the runtime: its parts, named here so they do not import the
// runtime that calls them (runtime.ts's Runtime has every one).

import type { CgroupHost, ContextCgroup } from '../cgroups/cgroups.js';
import type { ContextConfig } from '../context/config.js';
import type { Monitor } from '../kernel/helper.js';
import type { Layout } from '../kernel/layout.js';
import type { StateStore } from './state.js';

export interface RuntimeParts {
  readonly layout: Layout;
  readonly store: StateStore;
  readonly monitor: Monitor;
  readonly cgroupHost: CgroupHost;
  cgroupOf(name: string): ContextCgroup;
  config(name: string): ContextConfig;
}
