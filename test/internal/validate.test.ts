import {
  checkHeaderName, checkPathValue, checkPort, checkRegex, checkRouteHostname, formatGatewayDuration, formatLinkerdDuration,
} from '../../src/internal/validate';

const purpose = { purpose: 'the TLS SNI name' };

describe('checkRegex', () => {
  test.each([
    ['/v[0-9]+/items', undefined],
    ['^(foo|bar)$', undefined],
    ['(?<name>[a-z]+)', undefined], // named groups are fine in RE2 and Rust regex
    ['a\\(?=b\\)', undefined], // escaped: literal parentheses
    ['[(?=)(?<!x)]', undefined], // inside a class: literal characters
    ['\\\\1', undefined], // an escaped backslash followed by 1 is no backreference
    ['(a)\\1', 'a backreference'],
    ['(?<n>a)\\k<n>', 'a named backreference'],
    ['foo(?=bar)', 'a lookahead'],
    ['foo(?!bar)', 'a lookahead'],
    ['(?<=foo)bar', 'a lookbehind'],
    ['(?<!foo)bar', 'a lookbehind'],
  ])('%s', (pattern, unsupported) => {
    const found = checkRegex(pattern);
    if (unsupported === undefined) expect(found).toEqual([]);
    else expect(found.map((p) => p.rule)).toEqual([expect.stringContaining(`uses ${unsupported}`)]);
  });

  test('reports a pattern that does not compile, with the engine\'s reason', () => {
    const [p] = checkRegex('[a-');
    expect(p.rule).toMatch(/^does not compile as a regular expression \(/);
    expect(p.value).toBe('[a-');
  });
});

describe('checkPathValue', () => {
  test.each([
    ['PathPrefix', '/get', undefined],
    ['Exact', '/a%2Bb', undefined],
    ['Exact', 'get', "must start with '/'"],
    ['PathPrefix', '/a/./b', "must not contain '/./'"],
    ['PathPrefix', '/a/../b', "must not contain '/../'"],
    ['Exact', '/a%2fb', "must not contain '%2f'"],
    ['Exact', '/a#b', "must not contain '#'"],
    ['Exact', '/a/..', "must not end with '/.' or '/..'"],
    ['Exact', '/a?b', 'holds characters'],
    ['RegularExpression', 'no-slash-needed.*', undefined],
  ] as const)('%s %s', (type, value, rule) => {
    const found = checkPathValue(type, value);
    if (rule === undefined) expect(found).toEqual([]);
    else expect(found.map((p) => p.rule)).toEqual([expect.stringContaining(rule)]);
  });

  test('limits values to 1024 characters', () => {
    expect(checkPathValue('Exact', `/${'a'.repeat(1024)}`)[0].rule).toMatch(/1025 characters; Gateway API allows at most 1024/);
  });
});

describe('checkRouteHostname', () => {
  test('accepts DNS names and leading wildcards', () => {
    for (const h of ['httpbin.org', '*.example.com', 'a-b.c']) expect(checkRouteHostname(h, purpose)).toEqual([]);
  });

  test.each([
    ['', 'must not be empty'],
    ['10.0.0.1', 'is an IP address'],
    ['::1', 'is an IP address'],
    ['Example.com', 'write it in lower case: "example.com"'],
    ['a.*.com', 'a wildcard may only be the whole first label'],
    ['a..com', 'remove the empty label: "a.com"'],
    ['-a.com', 'use a DNS name'],
  ])('%s', (h, text) => {
    const [p] = checkRouteHostname(h, purpose);
    expect(`${p.rule}; ${p.fix}`).toContain(text);
  });
});

test('checkHeaderName follows the RFC 7230 token rule', () => {
  expect(checkHeaderName('X-Request-Id')).toEqual([]);
  expect(checkHeaderName("!#$%&'*+-.^_`|~09az")).toEqual([]);
  expect(checkHeaderName('x y')[0].fix).toBe('use e.g. "x-y"');
  expect(checkHeaderName('')).toHaveLength(1);
  expect(checkHeaderName('a'.repeat(257))).toHaveLength(1);
});

test('checkPort accepts 1-65535 integers only', () => {
  expect(checkPort(undefined)).toEqual([]);
  expect(checkPort(1)).toEqual([]);
  expect(checkPort(65535)).toEqual([]);
  for (const p of [0, 65536, 80.5, -1, Number.NaN]) expect(checkPort(p)).toHaveLength(1);
});

test('formatGatewayDuration writes the Gateway API duration grammar', () => {
  expect(formatGatewayDuration(0)).toBe('0s');
  expect(formatGatewayDuration(250)).toBe('250ms');
  expect(formatGatewayDuration(90_000)).toBe('1m30s');
  expect(formatGatewayDuration(3_723_004)).toBe('1h2m3s4ms');
  expect(formatGatewayDuration(100_000 * 3_600_000)).toBeUndefined();
  expect(formatGatewayDuration(1.5)).toBeUndefined();
  for (const ms of [1, 999, 1000, 61_000, 7_200_000, 3_723_004]) {
    expect(formatGatewayDuration(ms)).toMatch(/^([0-9]{1,5}(h|m|s|ms)){1,4}$/);
  }
});

test('formatLinkerdDuration writes one integer with the largest exact unit', () => {
  expect(formatLinkerdDuration(0)).toBe('0s');
  expect(formatLinkerdDuration(1500)).toBe('1500ms');
  expect(formatLinkerdDuration(2000)).toBe('2s');
  expect(formatLinkerdDuration(300_000)).toBe('5m');
  expect(formatLinkerdDuration(7_200_000)).toBe('2h');
  expect(formatLinkerdDuration(-1)).toBeUndefined();
});
