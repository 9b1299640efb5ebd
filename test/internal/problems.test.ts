import { Problems, quote } from '../../src/internal/problems';

describe('Problems', () => {
  test('does nothing when there are no problems', () => {
    const p = new Problems('Thing "a"');
    expect(p.count).toBe(0);
    expect(() => p.throwIfAny()).not.toThrow();
  });

  test('one problem: one line naming subject, prop, value, rule and fix', () => {
    const p = new Problems('HttpRoute "c/r"');
    p.add('port', 0, 'must be 1-65535', 'use 80');
    expect(() => p.throwIfAny()).toThrow(new Error('HttpRoute "c/r": \'port\' 0 must be 1-65535; use 80'));
  });

  test('several problems: counted and listed, with prefixes from addAll', () => {
    const p = new Problems('X "y"');
    p.add('a', 'v', 'is bad', 'fix a');
    p.addAll('rules[0].path', [{ prop: '', value: 'get', rule: "must start with '/'", fix: 'use "/get"' }]);
    p.addAll('retry', [{ prop: '.limit', value: 0, rule: 'is 0', fix: 'drop it' }]);
    expect(p.count).toBe(3);
    expect(() => p.throwIfAny()).toThrow(new Error([
      'X "y": 3 problems:',
      '  - \'a\' "v" is bad; fix a',
      '  - \'rules[0].path\' "get" must start with \'/\'; use "/get"',
      "  - 'retry.limit' 0 is 0; drop it",
    ].join('\n')));
  });

  test('quote shows values readably', () => {
    expect(quote('a"b')).toBe('"a\\"b"');
    expect(quote(undefined)).toBe('(unset)');
    expect(quote(Number.NaN)).toBe('NaN');
    expect(quote([1, 'x'])).toBe('[1,"x"]');
    const cyclic: any = {};
    cyclic.self = cyclic;
    expect(quote(cyclic)).toBe('[object Object]');
  });
});
