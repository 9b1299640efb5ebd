import type { HeaderModifierSpec, RequestRedirectSpec } from '../../src/model/proxy-config';
import {
  RegexSyntaxError, applyHeaderModifier, compileGrpcMethodMatch, compilePathMatch, compileRegex,
  compileValueMatches, grpcMethodMatches, headerValue, headersMatch, normalizePath, parseGrpcPath, ambiguousPath, unescapeAmbiguousPath,
  parseQuery, pathMatches, pathMatchesExact, pathMatchesPrefix, queryMatches, redirectLocation,
  replacePrefixMatch, valueMatches,
} from '../../src/proxy/route-match';

describe('compileRegex', () => {
  test.each([
    ['/api/v[0-9]+', '/api/v12', true],
    ['/api/v[0-9]+', '/api/v12/users', false], // full match, not search
    ['/api/v[0-9]+', 'x/api/v1', false],
    ['.*\\.json', '/a/b.json', true],
    ['.*\\.json', '/a/bjson', false],
    ['(?i)/Users/.*', '/users/7', true],
    ['/users/.*', '/Users/7', false],
    ['(?s)a.b', 'a\nb', true],
    ['a.b', 'a\nb', false],
    ['(?P<id>[0-9]+)', '123', true],
    ['\\A/x\\z', '/x', true],
    ['[]a]+', ']a]', true],
    ['[^]a]+', 'bcd', true],
    ['[^]a]+', 'b]d', false],
    ['a|b', 'a', true],
    ['a|b', 'ab', false], // alternation is grouped before anchoring
    ['\\d{3}', '123', true],
    ['\\a', '\x07', true],
    ['v1\\.0', 'v1.0', true],
    ['v1\\.0', 'v1x0', false],
  ])('%j on %j: %s', (pattern, input, expected) => {
    expect(compileRegex(pattern).test(input)).toBe(expected);
  });

  test.each([
    ['(a)\\1', /backreference/],
    ['(?<n>a)\\k<n>', /named backreference/],
    ['foo(?=bar)', /lookaround/],
    ['foo(?!bar)', /lookaround/],
    ['(?<=a)b', /lookaround/],
    ['(?<!a)b', /lookaround/],
    ['\\Qa.b\\E', /\\Q/],
    ['[[:alpha:]]+', /POSIX/],
    ['\\pL', /Unicode classes/],
    ['(?U)a+', /inline flag "U"/],
    ['(?m)^a$', /inline flag "m"/],
    ['a(?i)b', /only supported at the start/],
    ['\\Z', /unknown escape \\Z/],
    ['\\x{41}', /\\x needs two hex digits/],
    ['\\x4', /\\x needs two hex digits/],
    ['(?<name', /unterminated group name/],
    ['abc\\', /trailing backslash/],
    ['[abc', /unterminated character class/],
    ['(abc', /Unterminated group|unterminated/i],
    ['a{2,1}', /numbers out of order/],
    ['*a', /Nothing to repeat/],
    // JS accepts these; RE2 (Linkerd, Envoy) does not, so neither does the proxy.
    ['a{1001}', /RE2 refuses it/],
    ['.{0,65536}', /RE2 refuses it/],
    ['[a-\\d]', /RE2 refuses it/],
    ['[\\b]', /RE2 refuses it/],
  ])('throws when the pattern is %j', (pattern, message) => {
    expect(() => compileRegex(pattern)).toThrow(RegexSyntaxError);
    expect(() => compileRegex(pattern)).toThrow(message);
  });

  test.each([
    ['(?i)/Users/[a-f0-9]+', ['/users/ab12', '/USERS/AB12', '/uSeRs/Ff0'], ['/users/xyz', '/members/ab']],
    ['(?i)[^a-c]+', ['xyz', 'XYZ', '123'], ['abc', 'ABC', 'xBz']],
    ['(?i)[0-z]', ['A', 'z', '5'], ['~']],
    ['(?i)[]x]', [']', 'x', 'X'], ['y']],
    ['(?i)\\x41b', ['Ab', 'AB'], ['ab']], // hex escapes are not folded
    ['(?i)(?P<Name>ab)', ['AB', 'ab'], ['ac']],
    ['(?is)a.b', ['A\nB'], ['A\n\nB']],
    ['(?<Id>[0-9]+)-x', ['42-x'], ['42-X']],
  ])('case folding and groups: %j', (pattern, yes, no) => {
    const re = compileRegex(pattern);
    expect(re.flags).not.toContain('i');
    for (const s of yes) expect(re.test(s)).toBe(true);
    for (const s of no) expect(re.test(s)).toBe(false);
  });

  test('named groups keep their names', () => {
    expect(compileRegex('(?i)(?P<Name>[a-z]+)').exec('Hello')?.groups).toEqual({ Name: 'Hello' });
  });

  test('compiled output runs on V8\'s linear-time engine (no i flag, no lookaround, no backreferences)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('node:v8').setFlagsFromString('--enable-experimental-regexp-engine');
    for (const p of ['(?i)/Users/[a-f0-9]+', '(?s)/api/.*', '(?P<id>[0-9]+)', '\\A/x\\z', '[]a]+', '(a+)+', '(?i)[^a-c]+\\.json']) {
      const re = compileRegex(p);
      expect(() => new RegExp(re.source, `${re.flags}l`)).not.toThrow();
    }
  });

  test('error names the pattern', () => {
    expect(() => compileRegex('(a)\\1')).toThrow(expect.objectContaining({ pattern: '(a)\\1' }));
  });
});

describe('path matching', () => {
  test.each([
    ['/get', '/get', true],
    ['/get', '/get/', true],
    ['/get', '/get/x', true],
    ['/get', '/getter', false],
    ['/get', '/ge', false],
    ['/get/', '/get', true],
    ['/get/', '/get/x', true],
    ['/get/', '/getter', false],
    ['/', '/anything', true],
    ['/', '/', true],
    ['/a/b', '/a/b/c', true],
    ['/a/b', '/a/bc', false],
    ['/a/b', '/a', false],
    ['/Get', '/get', false], // case-sensitive
  ])('PathPrefix %s on %s: %s', (prefix, path, expected) => {
    expect(pathMatchesPrefix(path, prefix)).toBe(expected);
    expect(pathMatches(compilePathMatch({ type: 'PathPrefix', value: prefix }), path)).toBe(expected);
  });

  test.each([
    ['/get', '/get', true],
    ['/get', '/get/', false],
    ['/get', '/getter', false],
    ['/get', '/GET', false],
  ])('Exact %s on %s: %s', (value, path, expected) => {
    expect(pathMatchesExact(path, value)).toBe(expected);
    expect(pathMatches(compilePathMatch({ type: 'Exact', value }), path)).toBe(expected);
  });

  test('RegularExpression is a full match', () => {
    const m = compilePathMatch({ type: 'RegularExpression', value: '/items/[0-9]+' });
    expect(pathMatches(m, '/items/42')).toBe(true);
    expect(pathMatches(m, '/items/42/x')).toBe(false);
    expect(pathMatches(m, '/v1/items/42')).toBe(false);
  });

  test('an absent path match is PathPrefix "/"', () => {
    const m = compilePathMatch(undefined);
    expect(m).toMatchObject({ type: 'PathPrefix', value: '/', prefix: '' });
    expect(pathMatches(m, '/x/y')).toBe(true);
  });

  test('throws when the path regex is invalid', () => {
    expect(() => compilePathMatch({ type: 'RegularExpression', value: '(' })).toThrow(RegexSyntaxError);
  });
});

describe('normalizePath', () => {
  test.each([
    ['/get', '/get'],
    ['/get/../admin', '/admin'],
    ['/get/./x', '/get/x'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/.b/c', '/a/.b/c'],
    ['/a/..b', '/a/..b'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2E./b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2e/b', '/a/b'],
    ['/get/%2e%2e/%2e%2e/x', undefined],
    ['/a/%2e%2ex/b', '/a/%2e%2ex/b'],
    ['/a%2f..%2fb', '/a%2f..%2fb'],
    ['/..', undefined],
    ['/a/../../b', undefined],
    ['relative', undefined],
    ['', undefined],
  ])('%j → %j', (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });
});

describe('ambiguous paths', () => {
  test.each([
    ['/get/ip', undefined],
    ['/get/a%20b;v=1', undefined], // escapes and parameters that are data
    ['/get/..%2fip', 'encoded-slash'],
    ['/get/..%2Fip', 'encoded-slash'],
    ['/get/%2e%2e%2fip', 'encoded-slash'],
    ['/get/a%5Cb', 'encoded-backslash'],
    ['/get/..\\ip', 'backslash'],
    ['/get/%2e%2e/ip', 'encoded-dot-segment'],
    ['/get/.%2E/ip', 'encoded-dot-segment'],
    ['/get/%2e/ip', 'encoded-dot-segment'],
    ['/get/..;/ip', 'dot-segment-parameter'],
    ['/get/.;x=1/ip', 'dot-segment-parameter'],
    ['/get/%2e%2e;/ip', 'dot-segment-parameter'],
    ['/get;v=1/ip', undefined], // a parameter on an ordinary segment
    ['/get/..x;/ip', undefined],
    ['/a%2ex/b', undefined], // '%2e' inside a name is not a dot segment
  ])('ambiguousPath(%j) = %j', (path, kind) => {
    expect(ambiguousPath(path)).toBe(kind);
  });

  test.each([
    ['/get/..%2fip', '/ip'],
    ['/get/%2e%2e%2fip', '/ip'],
    ['/get/..;/ip', '/ip'],
    ['/get/.;x/ip', '/get/ip'],
    ['/get/a%5Cb', '/get/a/b'],
    ['/get/a\\b', '/get/a/b'],
    ['/get/a%2Fb;v=1/c%20d', '/get/a/b;v=1/c%20d'],
    ['/get/..%2f..%2f..%2fx', undefined],
  ])('unescaped and normalised, %j → %j', (path, expected) => {
    expect(normalizePath(unescapeAmbiguousPath(path))).toBe(expected);
  });

  test('normalizePath without encodedDots resolves only literal dot segments', () => {
    expect(normalizePath('/get/%2e%2e/ip', false)).toBe('/get/%2e%2e/ip');
    expect(normalizePath('/get/../%2e%2e/ip', false)).toBe('/%2e%2e/ip');
    expect(normalizePath('/get/%2e%2e/ip')).toBe('/ip');
  });
});

describe('header and query matching', () => {
  const headers = {
    'x-env': 'prod',
    'x-multi': ['a', 'b'],
    'content-type': 'application/json; charset=utf-8',
  };

  test('header names are case-insensitive, only the first of equal names counts', () => {
    const ms = compileValueMatches([
      { type: 'Exact', name: 'X-Env', value: 'prod' },
      { type: 'Exact', name: 'x-env', value: 'never-considered' },
    ], true);
    expect(ms).toEqual([{ name: 'x-env', exact: 'prod' }]);
    expect(headersMatch(ms, headers)).toBe(true);
  });

  test.each([
    ['Exact', 'x-env', 'prod', true],
    ['Exact', 'x-env', 'Prod', false], // values are case-sensitive
    ['Exact', 'x-env', 'pro', false],
    ['Exact', 'x-missing', 'prod', false],
    ['Exact', 'x-multi', 'a, b', true],
    ['RegularExpression', 'content-type', 'application/json.*', true],
    ['RegularExpression', 'content-type', 'json', false], // anchored
    ['RegularExpression', 'x-missing', '.*', false], // absent never matches
  ] as const)('%s %s=%j: %s', (type, name, value, expected) => {
    expect(headersMatch(compileValueMatches([{ type, name, value }], true), headers)).toBe(expected);
  });

  test('all header matches must hold (AND)', () => {
    const ms = compileValueMatches([
      { type: 'Exact', name: 'x-env', value: 'prod' },
      { type: 'Exact', name: 'x-other', value: '1' },
    ], true);
    expect(headersMatch(ms, headers)).toBe(false);
    expect(headersMatch(ms, { ...headers, 'x-other': '1' })).toBe(true);
    expect(headersMatch([], undefined)).toBe(true);
    expect(headerValue(undefined, 'x')).toBeUndefined();
  });

  test.each([
    ['a=1&b=2', { a: '1', b: '2' }],
    ['a=1&a=2', { a: '1' }],
    ['flag&x=', { flag: '', x: '' }],
    ['q=hello%20world&n%61me=v', { q: 'hello world', name: 'v' }],
    ['q=a+b', { q: 'a+b' }],
    ['bad=%E0%A4%A', { bad: '%E0%A4%A' }],
    ['&&a=1&', { a: '1' }],
    ['k=v=w', { k: 'v=w' }],
    ['', {}],
  ])('parseQuery(%j)', (query, expected) => {
    expect(Object.fromEntries(parseQuery(query))).toEqual(expected);
  });

  test('parseQuery(undefined) is empty', () => {
    expect(parseQuery(undefined).size).toBe(0);
  });

  test.each([
    ['Exact', 'page', '2', 'page=2', true],
    ['Exact', 'page', '2', 'page=3', false],
    ['Exact', 'page', '2', 'Page=2', false], // names are case-sensitive
    ['Exact', 'page', '2', 'page=2&page=3', true],
    ['Exact', 'page', '2', 'page=3&page=2', false],
    ['RegularExpression', 'id', '[0-9]+', 'id=123', true],
    ['RegularExpression', 'id', '[0-9]+', 'id=12a', false],
    ['Exact', 'id', 'x', '', false],
  ] as const)('%s %s=%j on %j: %s', (type, name, value, query, expected) => {
    expect(queryMatches(compileValueMatches([{ type, name, value }], false), parseQuery(query))).toBe(expected);
  });

  test('query names are not folded', () => {
    const ms = compileValueMatches([{ type: 'Exact', name: 'A', value: '1' }, { type: 'Exact', name: 'a', value: '2' }], false);
    expect(ms).toHaveLength(2);
    expect(valueMatches(ms[0], '1')).toBe(true);
  });
});

describe('gRPC', () => {
  test.each([
    ['/pkg.Svc/Method', { service: 'pkg.Svc', method: 'Method' }],
    ['/Svc/M', { service: 'Svc', method: 'M' }],
    ['/pkg.Svc', undefined],
    ['/pkg.Svc/', undefined],
    ['//Method', undefined],
    ['/a/b/c', undefined],
    ['pkg.Svc/Method', undefined],
    [undefined, undefined],
  ])('parseGrpcPath(%j)', (path, expected) => {
    expect(parseGrpcPath(path)).toEqual(expected);
  });

  test.each([
    [undefined, 'any.Svc', 'Any', true],
    [{ type: 'Exact' as const, service: 'pkg.Svc', method: 'Get' }, 'pkg.Svc', 'Get', true],
    [{ type: 'Exact' as const, service: 'pkg.Svc', method: 'Get' }, 'pkg.Svc', 'List', false],
    [{ type: 'Exact' as const, service: 'pkg.Svc', method: 'Get' }, 'pkg.Other', 'Get', false],
    [{ type: 'Exact' as const, service: 'pkg.Svc' }, 'pkg.Svc', 'Anything', true],
    [{ type: 'Exact' as const, method: 'Get' }, 'any.Svc', 'Get', true],
    [{ type: 'Exact' as const, method: 'Get' }, 'any.Svc', 'get', false],
    [{ type: 'RegularExpression' as const, service: 'pkg\\..*', method: 'Get.*' }, 'pkg.Svc', 'GetUser', true],
    [{ type: 'RegularExpression' as const, service: 'pkg\\..*', method: 'Get.*' }, 'other.Svc', 'GetUser', false],
    [{ type: 'RegularExpression' as const, service: 'pkg\\..*' }, 'pkg.Svc', 'List', true],
    [{ type: 'RegularExpression' as const, method: 'List|Get' }, 'x.Y', 'Get', true],
    [{ type: 'RegularExpression' as const, method: 'List|Get' }, 'x.Y', 'Getter', false],
  ])('%j on %s/%s: %s', (spec, service, method, expected) => {
    expect(grpcMethodMatches(compileGrpcMethodMatch(spec), service, method)).toBe(expected);
  });

  test('throws when a gRPC regex is invalid', () => {
    expect(() => compileGrpcMethodMatch({ type: 'RegularExpression', service: '(' })).toThrow(RegexSyntaxError);
  });
});

describe('applyHeaderModifier', () => {
  const spec = (s: Partial<HeaderModifierSpec>): HeaderModifierSpec => ({ set: [], add: [], remove: [], ...s });

  test('set replaces, case-insensitively, and adds when absent', () => {
    const out = applyHeaderModifier({ 'X-Env': 'dev', 'accept': '*/*' }, spec({ set: [{ name: 'x-env', value: 'prod' }, { name: 'X-New', value: '1' }] }));
    expect(out).toEqual({ 'x-env': 'prod', 'accept': '*/*', 'x-new': '1' });
  });

  test('add appends with a comma, pushes to arrays, creates when absent', () => {
    const out = applyHeaderModifier(
      { 'my-header': 'foo', 'set-cookie': ['a=1'] },
      spec({ add: [{ name: 'My-Header', value: 'bar,baz' }, { name: 'set-cookie', value: 'b=2' }, { name: 'x-added', value: 'v' }] }),
    );
    expect(out).toEqual({ 'my-header': 'foo,bar,baz', 'set-cookie': ['a=1', 'b=2'], 'x-added': 'v' });
  });

  test('remove deletes any case, and runs before set and add', () => {
    const out = applyHeaderModifier(
      { 'Authorization': 'secret', 'x-a': '1', 'x-b': '2' },
      spec({ remove: ['authorization', 'X-A', 'x-b'], set: [{ name: 'x-a', value: 'new' }], add: [{ name: 'x-b', value: 'added' }] }),
    );
    expect(out).toEqual({ 'x-a': 'new', 'x-b': 'added' });
  });

  test('does not mutate its input and drops undefined values', () => {
    const input = { 'x-a': '1', 'x-u': undefined };
    const out = applyHeaderModifier(input, spec({ set: [{ name: 'x-a', value: '2' }] }));
    expect(input).toEqual({ 'x-a': '1', 'x-u': undefined });
    expect(out).toEqual({ 'x-a': '2' });
  });

  test('names differing only in case are merged', () => {
    expect(applyHeaderModifier({ 'X-A': '1', 'x-a': '2' }, spec({}))).toEqual({ 'x-a': ['1', '2'] });
  });
});

describe('redirects', () => {
  test.each([
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/', '', '/foo/bar'],
    ['/foo/', '/', '', '/foo/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/bar', '/', '/api', '/api/foo/bar'],
  ])('ReplacePrefixMatch %s with prefix %s → %s gives %s', (path, prefix, replacement, expected) => {
    expect(replacePrefixMatch(path, prefix, replacement)).toBe(expected);
  });

  const req = { host: 'httpbin.org', port: 80, path: '/get', query: 'a=1' };
  const r = (s: Partial<RequestRedirectSpec>): RequestRedirectSpec => ({ statusCode: 302, ...s });

  test.each([
    ['no changes keeps everything, port 80 left out', req, r({}), undefined, 'http://httpbin.org/get?a=1'],
    ['scheme https uses 443 and leaves it out', req, r({ scheme: 'https' }), undefined, 'https://httpbin.org/get?a=1'],
    ['scheme http from a non-80 listener uses 80', { ...req, port: 8080 }, r({ scheme: 'http' }), undefined, 'http://httpbin.org/get?a=1'],
    ['no scheme keeps the listener port', { ...req, port: 8080 }, r({}), undefined, 'http://httpbin.org:8080/get?a=1'],
    ['explicit port wins', req, r({ scheme: 'https', port: 8443 }), undefined, 'https://httpbin.org:8443/get?a=1'],
    ['explicit port equal to well-known is left out', req, r({ scheme: 'https', port: 443 }), undefined, 'https://httpbin.org/get?a=1'],
    ['hostname replaced', req, r({ hostname: 'internal-egress.egress-test.svc' }), undefined, 'http://internal-egress.egress-test.svc/get?a=1'],
    ['ReplaceFullPath', req, r({ path: { type: 'ReplaceFullPath', value: '/blocked' } }), undefined, 'http://httpbin.org/blocked?a=1'],
    ['ReplacePrefixMatch', { ...req, path: '/get/x', query: undefined }, r({ path: { type: 'ReplacePrefixMatch', value: '/v2' } }), '/get', 'http://httpbin.org/v2/x'],
    ['ReplacePrefixMatch without a matched prefix uses /', { ...req, path: '/x' }, r({ path: { type: 'ReplacePrefixMatch', value: '/v2' } }), undefined, 'http://httpbin.org/v2/x?a=1'],
    ['request scheme https is kept', { ...req, port: 443, scheme: 'https' as const }, r({}), undefined, 'https://httpbin.org/get?a=1'],
    ['IPv6 hosts are bracketed', { host: '2001:db8::1', port: 8080, path: '/' }, r({}), undefined, 'http://[2001:db8::1]:8080/'],
    ['missing path is /', { host: 'h', port: 80 }, r({}), undefined, 'http://h/'],
  ])('%s', (_name, request, spec, prefix, expected) => {
    expect(redirectLocation(request, spec, prefix)).toBe(expected);
  });
});
