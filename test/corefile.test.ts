import {
  dnsNameProblem, escapeRegex, findRootServerBlock, insertIntoRootBlock, parseCorefile, parseServerKey,
  re2ToJsRegExp, renderRewriteRule, simulateRegexRewrite, suffixRegex, tokenizeCorefile,
} from '../src/internal/corefile';

const K3S_COREFILE = `.:53 {
    errors
    health
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    hosts /etc/coredns/NodeHosts {
      ttl 60
      reload 15s
      fallthrough
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import /etc/coredns/custom/*.override
}
import /etc/coredns/custom/*.server
`;

describe('tokenizeCorefile', () => {
  test('keeps backslashes outside quotes, drops comments, unquotes strings', () => {
    const tokens = tokenizeCorefile('rewrite name regex ^(.+)\\.a\\.b\\.$ x # comment here\n  template "a b" "q\\"x"');
    expect(tokens.map(t => t.text)).toEqual(['rewrite', 'name', 'regex', '^(.+)\\.a\\.b\\.$', 'x', 'template', 'a b', 'q"x']);
    expect(tokens.map(t => t.line)).toEqual([1, 1, 1, 1, 1, 2, 2, 2]);
    expect(tokens[6].quoted).toBe(true);
  });

  test('throws when a quoted string is not closed', () => {
    expect(() => tokenizeCorefile('a "b c\n d')).toThrow(/line 1: unterminated quoted string/);
  });
});

describe('parseCorefile', () => {
  test('reads server blocks, plugins, nested blocks and top-level imports', () => {
    const cf = parseCorefile(K3S_COREFILE);
    expect(cf.serverBlocks).toHaveLength(1);
    expect(cf.imports.map(i => i.args)).toEqual([['/etc/coredns/custom/*.server']]);
    const root = cf.serverBlocks[0];
    expect(root.keys).toEqual(['.:53']);
    expect(root.directives.map(d => d.name)).toEqual([
      'errors', 'health', 'ready', 'kubernetes', 'hosts', 'prometheus', 'forward', 'cache', 'loop', 'reload', 'loadbalance', 'import',
    ]);
    const k8s = root.directives[3];
    expect(k8s.args).toEqual(['cluster.local', 'in-addr.arpa', 'ip6.arpa']);
    expect(k8s.block!.map(d => [d.name, ...d.args])).toEqual([['pods', 'insecure'], ['fallthrough', 'in-addr.arpa', 'ip6.arpa']]);
    expect(k8s.line).toBe(5);
    expect(k8s.endLine).toBe(8);
  });

  test('reads one-line blocks and several keys', () => {
    const cf = parseCorefile('example.com:53, example.org { forward . 1.1.1.1 { max_fails 2 } }\n');
    expect(cf.serverBlocks[0].keys).toEqual(['example.com:53', 'example.org']);
    const fwd = cf.serverBlocks[0].directives[0];
    expect(fwd.firstOnLine).toBe(false);
    expect(fwd.block!.map(d => d.name)).toEqual(['max_fails']);
  });

  test('throws when braces are not balanced', () => {
    expect(() => parseCorefile('.:53 {\n  errors\n')).toThrow(/line 1: block opened here is never closed/);
    expect(() => parseCorefile('.:53 {\n  errors\n}\n}\n')).toThrow(/line 4: unexpected '}'/);
    expect(() => parseCorefile('.:53\n errors\n')).toThrow(/has no '\{ \.\.\. \}' body/);
  });
});

describe('server keys', () => {
  test.each([
    ['.:53', { scheme: 'dns', zone: '.', port: 53 }],
    ['dns://.:53', { scheme: 'dns', zone: '.', port: 53 }],
    ['.', { scheme: 'dns', zone: '.', port: undefined }],
    ['Example.COM:1053', { scheme: 'dns', zone: 'example.com.', port: 1053 }],
    ['tls://.:853', { scheme: 'tls', zone: '.', port: 853 }],
  ])('%s', (key, expected) => {
    expect(parseServerKey(key)).toEqual(expected);
  });

  test('the root block is the root zone on port 53, not another port or zone', () => {
    const cf = parseCorefile('example.com {\n whoami\n}\n.:5353 {\n whoami\n}\ndns://. {\n errors\n}\n');
    expect(findRootServerBlock(cf)!.keys).toEqual(['dns://.']);
    expect(findRootServerBlock(parseCorefile('example.com {\n whoami\n}\n'))).toBeUndefined();
  });
});

describe('insertIntoRootBlock', () => {
  const stanza = renderRewriteRule({ type: 'regex', from: suffixRegex('egress.local'), to: 'proxy.egress.svc.cluster.local' });

  test('inserts before kubernetes, indented like its neighbours, keeping the rest byte for byte', () => {
    const { text, insertedAtLine } = insertIntoRootBlock(K3S_COREFILE, stanza);
    expect(insertedAtLine).toBe(5);
    const lines = text.split('\n');
    expect(lines.slice(4, 7)).toEqual([
      '    rewrite stop {',
      '        name regex ^(.+)\\.egress\\.local\\.$ proxy.egress.svc.cluster.local. answer auto',
      '    }',
    ]);
    // Removing the inserted lines gives back the input exactly.
    expect([...lines.slice(0, 4), ...lines.slice(7)].join('\n')).toBe(K3S_COREFILE);
    const root = findRootServerBlock(parseCorefile(text))!;
    const names = root.directives.map(d => d.name);
    expect(names.indexOf('rewrite')).toBeLessThan(names.indexOf('kubernetes'));
    expect(names.indexOf('rewrite')).toBeLessThan(names.indexOf('forward'));
    const rewrite = root.directives.find(d => d.name === 'rewrite')!;
    expect(rewrite.args).toEqual(['stop']);
    expect(rewrite.block!.map(d => [d.name, ...d.args])).toEqual([
      ['name', 'regex', '^(.+)\\.egress\\.local\\.$', 'proxy.egress.svc.cluster.local.', 'answer', 'auto'],
    ]);
  });

  test('goes before an existing rewrite so the egress rule is evaluated first', () => {
    const base = '.:53 {\n\terrors\n\trewrite name foo.example bar.example\n\tforward . 8.8.8.8\n}\n';
    const { text } = insertIntoRootBlock(base, ['rewrite stop name exact a.example. b.example.']);
    expect(text).toBe('.:53 {\n\terrors\n\trewrite stop name exact a.example. b.example.\n\trewrite name foo.example bar.example\n\tforward . 8.8.8.8\n}\n');
  });

  test('picks the root block among several and appends before its brace when it has no anchor plugin', () => {
    const base = 'example.com:53 {\n  forward . 10.0.0.1\n}\n.:53 {\n  errors\n  whoami\n}\n';
    const { text } = insertIntoRootBlock(base, ['log']);
    expect(text).toBe('example.com:53 {\n  forward . 10.0.0.1\n}\n.:53 {\n  errors\n  whoami\n  log\n}\n');
  });

  test('throws when there is no root server block', () => {
    expect(() => insertIntoRootBlock('example.com {\n forward . 1.1.1.1\n}\n', stanza)).toThrow(/no root server block.*example\.com/);
  });

  test('throws when the anchor plugin shares its line', () => {
    expect(() => insertIntoRootBlock('.:53 { forward . 1.1.1.1\n}\n', stanza)).toThrow(/'forward' plugin on Corefile line 1 shares its line/);
    expect(() => insertIntoRootBlock('.:53 { errors }\n', stanza)).toThrow(/closing '\}' on Corefile line 1 shares its line/);
  });
});

describe('rewrite regex', () => {
  const target = 'proxy.egress.svc.cluster.local';
  const pattern = suffixRegex('egress.local');

  test('every dot is escaped and the pattern is anchored', () => {
    expect(pattern).toBe('^(.+)\\.egress\\.local\\.$');
    expect(escapeRegex('a.b-c*d')).toBe('a\\.b-c\\*d');
    expect(re2ToJsRegExp(pattern).source).toBe(pattern);
  });

  test.each([
    ['api.github.com.egress.local', 'api.github.com.egress.local.'],
    ['api.github.com.egress.local.', 'api.github.com.egress.local.'],
    ['API.GitHub.com.Egress.Local.', 'api.github.com.egress.local.'],
    ['x.egress.local', 'x.egress.local.'],
  ])('rewrites %s to the gateway', (name) => {
    expect(simulateRegexRewrite(pattern, target, name)).toBe('proxy.egress.svc.cluster.local.');
  });

  test.each([
    'egress.local',
    'egress.local.',
    'api.github.com',
    'fooXegressYlocal',
    'api.fooXegressYlocal.',
    'api.egress.local.evil.com',
    'api.github.comegress.local',
    'api.github.com.egress.local.default.svc.cluster.local.',
    'api.github.com.egress.localx.',
    'api.github.com.xegress.local.',
  ])('leaves %s alone', (name) => {
    expect(simulateRegexRewrite(pattern, target, name)).toBeUndefined();
  });

  test('the seed\'s one-liner matched look-alikes and search-path expansions; ours does not', () => {
    const seed = '(.*)\\.egress.local';
    expect(simulateRegexRewrite(seed, target, 'api.egressYlocal.')).toBe('proxy.egress.svc.cluster.local.');
    expect(simulateRegexRewrite(seed, target, 'a.egress.local.evil.com.')).toBe('proxy.egress.svc.cluster.local.');
    expect(simulateRegexRewrite(pattern, target, 'a.egress.local.evil.com.')).toBeUndefined();
    expect(simulateRegexRewrite(pattern, target, 'api.egressYlocal.')).toBeUndefined();
  });

  test('group substitution follows CoreDNS ({n}, then fully qualified)', () => {
    expect(simulateRegexRewrite(pattern, '{1}.svc.example', 'api.github.com.egress.local.')).toBe('api.github.com.svc.example.');
  });

  test('a suffix with regex metacharacters is matched literally', () => {
    const p = suffixRegex('egress.internal');
    expect(simulateRegexRewrite(p, target, 'a.egressXinternal.')).toBeUndefined();
    expect(simulateRegexRewrite(p, target, 'a.egress.internal.')).toBe('proxy.egress.svc.cluster.local.');
  });

  test('throws when a pattern leaves the RE2/JavaScript common subset', () => {
    expect(() => re2ToJsRegExp('^(?=a).*$')).toThrow(/lookaround/);
    expect(() => re2ToJsRegExp('^(a)\\1$')).toThrow(/backreferences/);
    expect(() => re2ToJsRegExp('(?P<x>a)')).toThrow(/named groups/);
    expect(() => re2ToJsRegExp('(?i)a')).toThrow(/inline flags/);
  });

  test('exact rules are one line, fully qualified', () => {
    expect(renderRewriteRule({ type: 'exact', from: 'api.github.com', to: target }))
      .toEqual(['rewrite stop name exact api.github.com. proxy.egress.svc.cluster.local.']);
  });
});

describe('dnsNameProblem', () => {
  test.each([
    ['egress.local', undefined],
    ['egress', undefined],
    ['a-b.c1', undefined],
    ['', /empty/],
    ['Egress.local', /upper-case/],
    ['egress..local', /empty label/],
    ['egress.local.', /ends with a dot/],
    ['.egress.local', /starts with a dot/],
    ['-a.local', /may only hold/],
    ['a_b.local', /may only hold/],
    [`${'a'.repeat(64)}.local`, /longer than 63/],
  ])('%s', (name, expected) => {
    const problem = dnsNameProblem(name);
    if (expected === undefined) expect(problem).toBeUndefined();
    else expect(problem).toMatch(expected);
  });
});
