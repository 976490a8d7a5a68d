// The state store: one directory per context holding its config (what it
// should be) and its state (what is running). Both written atomically.

import fs from 'node:fs';
import { PaeneError, errnoOf } from '../model/errors.js';
import { type ContextConfig, validateConfig } from '../context/config.js';
import { isAlive } from '../kernel/procfs.js';
import { writeJsonAtomic } from '../kernel/atomic.js';
import type { Layout } from '../kernel/layout.js';

/** What the runtime records about a started context. */
export interface RunState {
  /** host pid of the context's init (pid 1 inside) */
  pid: number;
  /** its start time in clock ticks, so a reused pid is never mistaken for it */
  starttime: number;
  started: string;
}

export class StateStore {
  constructor(readonly layout: Layout) {}

  exists(name: string): boolean {
    return fs.existsSync(this.layout.configFile(name));
  }

  /** Whether any context exists, without reading the whole list (a destroy asks this of 10,000). */
  any(): boolean {
    let dir: fs.Dir;
    try {
      dir = fs.opendirSync(this.layout.contextsDir);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return false;
      throw e;
    }
    try {
      for (let e = dir.readSync(); e; e = dir.readSync()) {
        if (!e.name.startsWith('.') && fs.existsSync(this.layout.configFile(e.name))) return true;
      }
      return false;
    } finally {
      dir.closeSync();
    }
  }

  names(): string[] {
    return this.entries().filter((n) => fs.existsSync(this.layout.configFile(n)));
  }

  /** The context directories' names, sorted (hidden ones, such as claims, left out). */
  private entries(): string[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.layout.contextsDir);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return [];
      throw e;
    }
    return entries.filter((n) => !n.startsWith('.')).sort();
  }

  readConfig(name: string): ContextConfig {
    const config = this.readConfigIfAny(name);
    if (config) return config;
    const known = this.names();
    throw new PaeneError(
      'not-found',
      `no context named '${name}'` +
        (known.length ? ` (known: ${known.join(', ')})` : ' (there are no contexts; create one with `paene create NAME`)'),
    );
  }

  /**
   * Every context's config, in name order, reading each file once (`list`
   * of thousands: no separate existence check per name). A directory without
   * a config (a create under way, or one that crashed) is not a context yet.
   */
  readAllConfigs(): ContextConfig[] {
    return this.entries().flatMap((n) => this.readConfigIfAny(n) ?? []);
  }

  /** The config, or undefined when the context does not exist; a broken config throws. */
  readConfigIfAny(name: string): ContextConfig | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.layout.configFile(name), 'utf8');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw e;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new PaeneError('invalid-argument', `${this.layout.configFile(name)} is not valid JSON`);
    }
    return validateConfig(parsed, this.layout.configFile(name));
  }

  writeConfig(config: ContextConfig): void {
    writeJsonAtomic(this.layout.configFile(config.name), config);
  }

  readState(name: string): RunState | undefined {
    try {
      const s = JSON.parse(fs.readFileSync(this.layout.stateFile(name), 'utf8')) as RunState;
      return typeof s.pid === 'number' && typeof s.starttime === 'number' ? s : undefined;
    } catch {
      return undefined;
    }
  }

  writeState(name: string, s: RunState): void {
    writeJsonAtomic(this.layout.stateFile(name), s, false); // atomic, not synced: a power loss ends the run it describes
  }

  clearState(name: string): void {
    fs.rmSync(this.layout.execPlanFile(name), { force: true }); // first: a plan never outlives its state
    fs.rmSync(this.layout.stateFile(name), { force: true });
  }

  /** The run state if its init is still alive; a crashed or rebooted context has none. */
  live(name: string): RunState | undefined {
    const s = this.readState(name);
    return s && isAlive(s.pid, s.starttime) ? s : undefined;
  }
}
