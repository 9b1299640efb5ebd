// Classification: egress suffix names, absolute-form, CONNECT authorities and SNI into Targets.
import {
  classifyConnect, classifyHttp, classifySni, normaliseDnsName, requestAuthority, splitHostPort, SuffixMatcher, toALabels,
} from '../../src/proxy/classify';
import { EgressError } from '../../src/proxy/errors';

const suffixes = new SuffixMatcher(['egress.local', 'out.internal.']);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof EgressError ? e.code : 'not-egress-error';
  }
  return undefined;
}

describe('names', () => {
  test('normaliseDnsName lower-cases and drops one trailing dot', () => {
    expect(normaliseDnsName('API.GitHub.com.')).toBe('api.github.com');
    expect(normaliseDnsName('a..')).toBeUndefined();
  });

  test.each([
    ['host', { host: 'host' }], ['host:8080', { host: 'host', port: 8080 }], ['[::1]:443', { host: '::1', port: 443 }], ['[::1]', { host: '::1' }],
    ['::1', undefined], ['host:0', undefined], ['host:99999', undefined], ['host:x', undefined], [':80', undefined], ['[nope]:1', undefined],
  ])('splitHostPort(%s)', (input, expected) => {
    expect(splitHostPort(input)).toEqual(expected);
  });
});

describe('classifyHttp', () => {
  const req = (url: string, headers: Record<string, string> = {}) => ({ method: 'GET', url, headers });

  test('Host: <name>.<suffix> targets <name> at the parent port', () => {
    const c = classifyHttp(req('/repos?page=2'), 'API.GitHub.com.egress.local', suffixes, false, 80, 0.5);
    expect(c.target).toEqual({ protocol: 'http', host: 'api.github.com', port: 80, method: 'GET', path: '/repos', query: 'page=2', headers: {}, pick: 0.5 });
    expect(c.path).toBe('/repos?page=2');
    expect(c.absolute).toBe(false);
  });

  test.each([
    ['/get/../ip', '/ip', '/ip'],
    // '%2e%2e' is ambiguous: see 'ambiguous paths per ambiguousPaths'.
    ['/a/./b/', '/a/b/', '/a/b/'],
    ['/get?next=/../ip', '/get', '/get?next=/../ip'],
  ])('dot segments are resolved before matching and forwarding: %s → %s', (url, matched, forwarded) => {
    const c = classifyHttp(req(url, { host: 'httpbin.org.egress.local' }), 'httpbin.org.egress.local', suffixes, false, 80, 0);
    expect(c.target.path).toBe(matched);
    expect(c.path).toBe(forwarded);
  });

  test('a path that climbs above the root is a bad request', () => {
    expect(codeOf(() => classifyHttp(req('/../etc/passwd', { host: 'a.egress.local' }), 'a.egress.local', suffixes, false, 80, 0))).toBe('BAD_REQUEST');
  });

  test('a port in the Host header names the service port the client addressed', () => {
    expect(classifyHttp(req('/'), 'api.github.com.egress.local:9000', suffixes, false, 80, 0).target.port).toBe(9000);
  });

  test('a second suffix (given with a trailing dot) matches too', () => {
    expect(classifyHttp(req('/'), 'x.example.out.internal', suffixes, false, 80, 0).target.host).toBe('x.example');
  });

  test('gRPC content type classifies as grpc', () => {
    const c = classifyHttp({ method: 'POST', url: '/pkg.Svc/Call', headers: { 'content-type': 'application/grpc+proto' } }, 'svc.example.egress.local', suffixes, false, 80, 0);
    expect(c.target.protocol).toBe('grpc');
  });

  test('absolute-form with forwardProxy: host, port and origin-form path', () => {
    const c = classifyHttp(req('http://HttpBin.org:8080/get?a=1'), 'httpbin.org:8080', suffixes, true, 80, 0);
    expect(c.target).toMatchObject({ host: 'httpbin.org', port: 8080, path: '/get', query: 'a=1' });
    expect(c.path).toBe('/get?a=1');
    expect(c.absolute).toBe(true);
  });

  test('absolute-form to an egress name strips the suffix; IP literals are kept for vetting', () => {
    expect(classifyHttp(req('http://api.example.egress.local/'), undefined, suffixes, true, 80, 0).target.host).toBe('api.example');
    expect(classifyHttp(req('http://[::1]/'), undefined, suffixes, true, 80, 0).target.host).toBe('::1');
  });

  test.each([
    ['no suffix', '/', 'api.github.com', false, 'UNKNOWN_NAME'],
    ['absolute-form without forwardProxy', 'http://a.example/', 'a.example', false, 'UNKNOWN_NAME'],
    ['missing Host', '/', undefined, false, 'BAD_REQUEST'],
    ['IP literal under the suffix', '/', '10.0.0.1.egress.local', false, 'BAD_REQUEST'],
    ['invalid label', '/', 'a!b.egress.local', false, 'BAD_REQUEST'],
    ['invalid IDN', '/', 'a\u00ad\u200b.b\u{1F600}\u0000.egress.local', false, 'BAD_REQUEST'],
    ['https in absolute-form', 'https://a.example/', 'a.example', true, 'BAD_REQUEST'],
    ['credentials in absolute-form', 'http://u:p@a.example/', 'a.example', true, 'BAD_REQUEST'],
    ['malformed Host', '/', 'a.example.egress.local:99999', false, 'BAD_REQUEST'],
  ])('%s → %s', (_what, url, authority, forward, code) => {
    expect(codeOf(() => classifyHttp(req(url), authority, suffixes, forward, 80, 0))).toBe(code);
  });
});

describe('underscores and internationalised names', () => {
  const req = (url: string) => ({ method: 'GET', url, headers: {} });
  const latin1 = (s: string) => Buffer.from(s, 'utf8').toString('latin1'); // how node:http hands raw UTF-8 header bytes over

  test('toALabels: ASCII unchanged, U-labels to punycode, raw UTF-8 bytes decoded first, invalid → undefined', () => {
    expect(toALabels('my_tenant.example.com')).toBe('my_tenant.example.com');
    expect(toALabels('bücher.example')).toBe('xn--bcher-kva.example');
    expect(toALabels('BÜCHER.example')).toBe('xn--bcher-kva.example');
    expect(toALabels(latin1('bücher.example'))).toBe('xn--bcher-kva.example');
    expect(toALabels(latin1('例え.jp'))).toBe('xn--r8jz45g.jp');
    expect(toALabels('a\u0000ü.example')).toBeUndefined();
  });

  test('a Host with "_" under the suffix is a valid target', () => {
    expect(classifyHttp(req('/x'), 'My_Tenant.saas.example.egress.local', suffixes, false, 80, 0).target.host).toBe('my_tenant.saas.example');
  });

  test('an IDN Host (as U-labels or raw UTF-8) targets the A-label name', () => {
    expect(classifyHttp(req('/'), 'bücher.example.egress.local', suffixes, false, 80, 0).target.host).toBe('xn--bcher-kva.example');
    expect(classifyHttp(req('/'), latin1('Bücher.example.egress.local:8080'), suffixes, false, 80, 0).target)
      .toMatchObject({ host: 'xn--bcher-kva.example', port: 8080 });
    expect(classifyHttp(req('/'), 'xn--bcher-kva.example.egress.local', suffixes, false, 80, 0).target.host).toBe('xn--bcher-kva.example');
  });

  test('absolute-form: the URL is punycoded and a U-label Host for the same name agrees with it', () => {
    const c = classifyHttp(req('http://xn--bcher-kva.example/'), latin1('bücher.example'), suffixes, true, 80, 0);
    expect(c.target.host).toBe('xn--bcher-kva.example');
    expect(classifyHttp(req('http://my_tenant.example/'), 'my_tenant.example', suffixes, true, 80, 0).target.host).toBe('my_tenant.example');
  });

  test('CONNECT: "_" and IDN authorities', () => {
    expect(classifyConnect('my_tenant.example:443', suffixes)).toEqual({ protocol: 'tls', host: 'my_tenant.example', port: 443 });
    expect(classifyConnect('bücher.example:443', suffixes)).toEqual({ protocol: 'tls', host: 'xn--bcher-kva.example', port: 443 });
    expect(codeOf(() => classifyConnect('a!b.example:443', suffixes))).toBe('BAD_REQUEST');
  });

  test('SNI with "_" is valid', () => {
    expect(classifySni('My_Tenant.example', 443).host).toBe('my_tenant.example');
  });
});

describe('ambiguous paths per ambiguousPaths', () => {
  const req = (url: string) => ({ method: 'GET', url, headers: {} });
  const classify = (url: string, mode: 'Reject' | 'UnescapeAndForward' | 'KeepUnchanged') =>
    classifyHttp(req(url), 'httpbin.org.egress.local', suffixes, false, 80, 0, mode);

  test.each([
    ['/get/..%2fip?x=1', 'Reject', '/get/..%2fip', '/get/..%2fip?x=1', 'encoded-slash'],
    ['/get/%2e%2e/ip', 'Reject', '/get/%2e%2e/ip', '/get/%2e%2e/ip', 'encoded-dot-segment'],
    ['/get/..;/ip', 'Reject', '/get/..;/ip', '/get/..;/ip', 'dot-segment-parameter'],
    ['/get/..%2fip?x=1', 'UnescapeAndForward', '/ip', '/ip?x=1', undefined],
    ['/get/%2e%2e%2fip', 'UnescapeAndForward', '/ip', '/ip', undefined],
    ['/get/..;/ip', 'UnescapeAndForward', '/ip', '/ip', undefined],
    ['/get/..%2fip', 'KeepUnchanged', '/get/..%2fip', '/get/..%2fip', undefined],
    ['/get/../ip', 'Reject', '/ip', '/ip', undefined], // literal dot segments are not ambiguous
  ] as const)('%s with %s: matched %s, forwarded %s, ambiguity %s', (url, mode, matched, forwarded, ambiguity) => {
    const c = classify(url, mode);
    expect(c.target.path).toBe(matched);
    expect(c.path).toBe(forwarded);
    expect(c.ambiguity).toBe(ambiguity);
  });

  test('unescaping that climbs above the root is a bad request', () => {
    expect(codeOf(() => classify('/..%2f..%2fetc', 'UnescapeAndForward'))).toBe('BAD_REQUEST');
  });
});

describe('requestAuthority and Host consistency', () => {
  test('one Host is the authority; HTTP/2 :authority wins when Host agrees with it', () => {
    expect(requestAuthority({ headers: { host: 'a.egress.local' }, rawHeaders: ['Host', 'a.egress.local'] })).toBe('a.egress.local');
    expect(requestAuthority({ headers: { ':authority': 'a.egress.local', 'host': 'A.egress.local' } })).toBe('a.egress.local');
    expect(requestAuthority({ headers: {}, rawHeaders: [] })).toBeUndefined();
  });

  test.each([
    ['two Host lines', { headers: { host: 'a.egress.local' }, rawHeaders: ['Host', 'a.egress.local', 'x-y', '1', 'hOsT', 'b.egress.local'] }],
    ['two identical Host lines', { headers: { host: 'a.egress.local' }, rawHeaders: ['host', 'a.egress.local', 'host', 'a.egress.local'] }],
    ['HTTP/2 Host naming another authority', { headers: { ':authority': 'a.egress.local', 'host': 'b.egress.local' } }],
  ])('%s → BAD_REQUEST', (_what, req) => {
    expect(codeOf(() => requestAuthority(req))).toBe('BAD_REQUEST');
  });

  const req = (url: string) => ({ method: 'GET', url, headers: {} });
  test.each([
    ['http://api.example/', 'api.example'], ['http://api.example/', 'API.example:80'], ['http://api.example:8080/', 'api.example:8080'],
    ['http://[::1]/', '[::1]'], ['http://api.example/', 'api.example.'],
  ])('absolute-form %s with Host %s is accepted', (url, host) => {
    expect(classifyHttp(req(url), host, suffixes, true, 80, 0).absolute).toBe(true);
  });

  test.each([
    ['http://api.example/', 'other.example'], ['http://api.example/', 'api.example:8080'], ['http://api.example:8080/', 'api.example'],
    ['http://api.example/', 'api.example.egress.local'], ['http://api.example/', 'api.example:x'],
  ])('absolute-form %s with a different Host %s → BAD_REQUEST', (url, host) => {
    expect(codeOf(() => classifyHttp(req(url), host, suffixes, true, 80, 0))).toBe('BAD_REQUEST');
  });
});

describe('classifyConnect and classifySni', () => {
  test('CONNECT host:443 is tls, other ports tcp', () => {
    expect(classifyConnect('API.example:443', suffixes)).toEqual({ protocol: 'tls', host: 'api.example', port: 443 });
    expect(classifyConnect('db.example.egress.local:5432', suffixes)).toEqual({ protocol: 'tcp', host: 'db.example', port: 5432 });
  });

  test('CONNECT without a port is a bad request', () => {
    expect(codeOf(() => classifyConnect('api.example', suffixes))).toBe('BAD_REQUEST');
  });

  test('SNI names are normalised; invalid ones refused', () => {
    expect(classifySni('GitHub.com', 443)).toEqual({ protocol: 'tls', host: 'github.com', port: 443 });
    expect(codeOf(() => classifySni('bad name', 443))).toBe('BAD_REQUEST');
  });
});

describe('SuffixMatcher.origin: Host values classified once', () => {
  test('a repeated Host is answered from memory, with the same result as the first time', () => {
    const m = new SuffixMatcher(['egress.local']);
    const first = m.origin('API.GitHub.com.egress.local.:9000');
    expect(first).toEqual({ host: 'api.github.com', port: 9000 });
    expect(m.origin('API.GitHub.com.egress.local.:9000')).toBe(first);
    // Another spelling is its own entry, and the port stays with the spelling that had it.
    expect(m.origin('api.github.com.egress.local')).toEqual({ host: 'api.github.com' });
    expect(m.origin('b\u00fccher.example.egress.local')).toEqual({ host: 'xn--bcher-kva.example' });
  });

  test('refusals are thrown every time, never remembered', () => {
    const m = new SuffixMatcher(['egress.local']);
    for (let i = 0; i < 2; i++) {
      expect(() => m.origin('api.github.com')).toThrow(expect.objectContaining({ code: 'UNKNOWN_NAME' }));
      expect(() => m.origin('bad_-.egress.local:99999')).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
      expect(() => m.origin('127.0.0.1.egress.local:80')).toThrow('IP literal under an egress suffix');
      expect(() => m.origin('-a.egress.local')).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
  });

  test('past 1,024 names the memory starts over: every answer stays right', () => {
    const m = new SuffixMatcher(['egress.local']);
    const first = m.origin('n0.example.egress.local');
    for (let i = 1; i <= 1_100; i++) expect(m.origin(`n${i}.example.egress.local:${1 + (i % 65535)}`)).toEqual({ host: `n${i}.example`, port: 1 + (i % 65535) });
    const again = m.origin('n0.example.egress.local');
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
  });
});
