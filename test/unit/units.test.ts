import { describe, expect, it } from 'vitest';
import {
  formatByteRate,
  formatBytes,
  formatDuration,
  formatOpsRate,
  formatPercent,
  parseByteRate,
  parseCount,
  parseDuration,
  parseOpsRate,
  parsePercent,
  parseRate,
  parseSize,
} from '../../src/model/units.js';

describe('sizes (binary: K = 1024)', () => {
  it('parses units', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('512b')).toBe(512);
    expect(parseSize('64M')).toBe(64 * 2 ** 20);
    expect(parseSize('64MiB')).toBe(64 * 2 ** 20);
    expect(parseSize('64MB')).toBe(64 * 2 ** 20);
    expect(parseSize('64m')).toBe(64 * 2 ** 20);
    expect(parseSize('5G')).toBe(5 * 2 ** 30);
    expect(parseSize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseSize('1.5K')).toBe(1536);
    expect(parseSize(' 2 T ')).toBe(2 * 2 ** 40);
    expect(parseSize('.5k')).toBe(512);
  });
  it('rejects junk clearly', () => {
    for (const s of ['', 'M', '64X', '-1', '1e3', '64 MBs', '1,5G', '64Mi'])
      expect(() => parseSize(s, '--memory'), s).toThrow(/invalid --memory/);
    expect(() => parseSize('99999P')).toThrow(/too large/);
  });
});

describe('rates', () => {
  it('bytes and ops', () => {
    expect(parseRate('10MiB/s')).toEqual({ kind: 'bytes', perSecond: 10 * 2 ** 20 });
    expect(parseRate('10M/s')).toEqual({ kind: 'bytes', perSecond: 10 * 2 ** 20 });
    expect(parseRate('10M')).toEqual({ kind: 'bytes', perSecond: 10 * 2 ** 20 });
    expect(parseRate('500/s')).toEqual({ kind: 'ops', perSecond: 500 });
    expect(parseRate('500iops')).toEqual({ kind: 'ops', perSecond: 500 });
    expect(parseRate('500 ops/s')).toEqual({ kind: 'ops', perSecond: 500 });
    expect(() => parseRate('fast')).toThrow(/bytes per second/);
  });
  it('typed rates', () => {
    expect(parseByteRate('50MiB/s')).toBe(50 * 2 ** 20);
    expect(parseByteRate('1048576')).toBe(1048576);
    expect(() => parseByteRate('500/s', '--io-read')).toThrow(/invalid --io-read '500\/s': expected bytes/);
    expect(parseOpsRate('500/s')).toBe(500);
    expect(parseOpsRate('500')).toBe(500);
    expect(() => parseOpsRate('5M/s', '--io-read-ops')).toThrow(/expected operations/);
  });
});

describe('percent, duration, count', () => {
  it('percent', () => {
    expect(parsePercent('25%')).toBe(25);
    expect(parsePercent('25')).toBe(25);
    expect(parsePercent('12.5 %')).toBe(12.5);
    expect(parsePercent('250%')).toBe(250);
    expect(() => parsePercent('a quarter')).toThrow(/percentage/);
    expect(() => parsePercent('-5%')).toThrow(/percentage/);
  });
  it('duration', () => {
    expect(parseDuration('100ms')).toBe(100);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250us')).toBe(0.25);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('40')).toBe(40);
    expect(() => parseDuration('soon')).toThrow(/duration/);
    expect(() => parseDuration('2d')).toThrow(/duration/);
  });
  it('count', () => {
    expect(parseCount('1024', '--nproc', 1)).toBe(1024);
    expect(() => parseCount('0', '--nproc', 1)).toThrow(/from 1/);
    expect(() => parseCount('1.5', '--nproc')).toThrow(/whole number/);
  });
});

describe('formatters', () => {
  it('print readable values', () => {
    expect(formatBytes(64 * 2 ** 20)).toBe('64MiB');
    expect(formatBytes(1536)).toBe('1.5KiB');
    expect(formatBytes(100)).toBe('100B');
    expect(formatBytes(5 * 2 ** 30)).toBe('5GiB');
    expect(formatByteRate(10 * 2 ** 20)).toBe('10MiB/s');
    expect(formatOpsRate(500)).toBe('500/s');
    expect(formatPercent(21.875)).toBe('21.9%');
    expect(formatDuration(0.25)).toBe('250us');
    expect(formatDuration(100)).toBe('100ms');
    expect(formatDuration(2500)).toBe('2.5s');
    expect(parseSize(formatBytes(3 * 2 ** 20))).toBe(3 * 2 ** 20);
  });
});
