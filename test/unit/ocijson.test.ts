import { describe, expect, it } from 'vitest';
import { OCI_JSON_MAX_BYTES, OCI_JSON_MAX_DEPTH, jsonDepth, parseOciJson } from '../../src/oci/json.js';

describe('OCI JSON within limits', () => {
  it('measures nesting, skipping brackets inside strings and escapes', () => {
    expect(jsonDepth('{}')).toBe(1);
    expect(jsonDepth('{"a":[1,{"b":[]}]}')).toBe(4);
    expect(jsonDepth('{"a":"[[[[\\"[[["}')).toBe(1);
    expect(jsonDepth('"\\\\"')).toBe(0);
  });
  it('refuses a config nested past the limit with a sentence that names it, not a stack overflow', () => {
    const deep = (n: number) => '{"a":' + '['.repeat(n) + ']'.repeat(n) + '}';
    expect(() => parseOciJson(deep(20_000), 'config.json')).toThrow(
      `config.json: nested more than ${OCI_JSON_MAX_DEPTH} levels deep (the limit)`,
    );
    expect(parseOciJson(deep(OCI_JSON_MAX_DEPTH - 1), 'config.json')).toHaveProperty('a');
  });
  it('refuses what is over the size limit, and what is not JSON', () => {
    expect(() => parseOciJson(' '.repeat(OCI_JSON_MAX_BYTES + 1), 'config.json')).toThrow(/over the limit of 33554432 bytes/);
    expect(() => parseOciJson('{"a":', 'p.json')).toThrow(/^p.json: not JSON/);
  });
});
