import { describe, expect, it } from 'vitest';
import { eachBounded, expandTemplate, isPattern, matchPattern, selectNames } from '../../src/model/names.js';

const existing = ['db-1', 'db-2', 'web1', 'web10', 'web2', 'worker'];

describe('name patterns', () => {
  it('tells patterns from names', () => {
    expect(isPattern('web1')).toBe(false);
    expect(isPattern('web*')).toBe(true);
    expect(isPattern('db-?')).toBe(true);
    expect(isPattern('web[12]')).toBe(true);
  });

  it('matches shell-style on whole names only', () => {
    expect(matchPattern('web*', existing)).toEqual(['web1', 'web10', 'web2']);
    expect(matchPattern('w*', existing)).toEqual(['web1', 'web10', 'web2', 'worker']);
    expect(matchPattern('web?', existing)).toEqual(['web1', 'web2']);
    expect(matchPattern('db-[2-9]', existing)).toEqual(['db-2']);
    expect(matchPattern('db-[!2]', existing)).toEqual(['db-1']);
    expect(matchPattern('eb*', existing)).toEqual([]); // anchored
    expect(() => matchPattern('web[1', existing)).toThrow(/without a closing/);
  });

  it('selects names, patterns and --all, without duplicates, keeping order', () => {
    expect(selectNames(['web2', 'web*', 'db-1'], false, () => existing)).toEqual(['web2', 'web1', 'web10', 'db-1']);
    expect(selectNames([], true, () => existing)).toEqual(existing);
    expect(selectNames(['ghost'], false, () => existing)).toEqual(['ghost']); // a plain name is the verb's to judge
  });

  it('refuses a pattern that matches nothing, no names, and names with --all', () => {
    expect(() => selectNames(['wbe*'], false, () => existing)).toThrow(/no context matches 'wbe\*'/);
    expect(() => selectNames([], false, () => existing)).toThrow(/at least one/);
    expect(() => selectNames(['web1'], true, () => existing)).toThrow(/not both/);
  });
});

describe('name templates', () => {
  it('fills %d and %0Nd from 1', () => {
    expect(expandTemplate('web%d', 3)).toEqual(['web1', 'web2', 'web3']);
    expect(expandTemplate('c%03d-x', 2)).toEqual(['c001-x', 'c002-x']);
    expect(expandTemplate('n%d', 2, 10)).toEqual(['n10', 'n11']);
  });

  it('refuses a template without exactly one %d, or a bad count', () => {
    expect(() => expandTemplate('web', 3)).toThrow(/needs a name template with %d/);
    expect(() => expandTemplate('a%db%d', 3)).toThrow(/one %d/);
    expect(() => expandTemplate('web%d', 0)).toThrow(/at least 1/);
  });
});

describe('eachBounded', () => {
  it('runs every item, at most `limit` at once, keeping order and failures apart', async () => {
    let running = 0;
    let peak = 0;
    const out = await eachBounded([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      if (n % 3 === 0) throw new Error(`no ${n}`);
      return n * 10;
    });
    expect(peak).toBe(3);
    expect(out.map((r) => (r.ok ? r.value : r.error.message))).toEqual([10, 20, 'no 3', 40, 50, 'no 6', 70]);
  });
});
