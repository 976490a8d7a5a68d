// Output helpers shared by every CLI verb: aligned tables for people, JSON for scripts.

export { type Column, formatTable } from '../model/table.js';

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

// One byte formatter for the whole CLI (1024-based, like every size paene parses).
export { formatBytes } from '../model/units.js';

/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal
 * (scripts and CI logs get nothing). Call done() to clear the line.
 */
export class ProgressBar {
  private readonly tty = process.stderr.isTTY === true;
  private last = 0;
  constructor(
    private readonly label: string,
    private total?: number,
  ) {}
  update(current: number, detail = ''): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 80 && current !== this.total) return;
    this.last = now;
    const width = 30;
    let bar: string;
    if (this.total && this.total > 0) {
      const f = Math.min(1, current / this.total);
      const n = Math.round(f * width);
      bar = `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${(f * 100).toFixed(0).padStart(3)}%`;
    } else {
      bar = `${current}`;
    }
    process.stderr.write(`\r\x1b[K${this.label} ${bar} ${detail}`);
  }
  done(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}
