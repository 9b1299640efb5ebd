// The config boundary: a minimal hand-written config gets the model's defaults; a bad one gets
// every problem at once, each with its JSON path and offending value; the result is frozen.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIMIT_BOUNDS, TIMEOUT_BOUNDS, WORKER_BOUNDS } from '../../src/model/bounds';
import { DEFAULT_LIMITS, DEFAULT_TIMEOUTS, DEFAULT_TLS, DEFAULT_POOL } from '../../src/model/defaults';
import { ConfigError, loadConfigFile, parseConfigText, validateConfig, type ConfigProblem } from '../../src/proxy/config';

const MINIMAL = {
  apiVersion: 'egress.cdk8s.io/v1alpha1',
  kind: 'EgressProxyConfig',
  gateway: { name: 'egress-gateway', namespace: 'egress' },
  parent: { name: 'all-egress', namespace: 'egress', trafficPolicy: 'Deny' },
};

function problems(doc: unknown): ConfigProblem[] {
  const r = validateConfig(doc);
  if (r.ok) throw new Error('expected problems');
  return [...r.problems];
}

describe('valid configs', () => {
  test('a minimal hand-written config is completed with the shared defaults', () => {
    const r = validateConfig(MINIMAL);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const c = r.config;
    expect(c.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(c.defaultTls).toEqual(DEFAULT_TLS);
    expect(c.listeners).toEqual({
      bindAddress: '0.0.0.0',
      http: { port: 8080, suffixes: ['egress.local'], forwardProxy: false, parentPort: 80, ambiguousPaths: 'Reject', connectSni: 'RequireMatch' },
      tls: undefined,
      tcp: [],
      admin: { port: 9901 },
    });
    expect(c.parent).toEqual({ group: 'policy.linkerd.io', kind: 'EgressNetwork', name: 'all-egress', namespace: 'egress', trafficPolicy: 'Deny', networks: [], mode: 'Enforce' });
    expect(c.addressPolicy).toEqual({ allowCidrs: [], denyCidrs: [] });
    expect(c.externalServices).toEqual([]);
  });

  test('external service defaults: port 80 → 443 with TLS, pool, no endpoints; plaintext keeps the port', () => {
    const r = validateConfig({
      ...MINIMAL,
      externalServices: [{ name: 'github', host: 'api.github.com' }, { name: 'plain', host: 'plain.example', tls: { enabled: false }, ports: [{ port: 8080 }] }],
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const [gh, plain] = r.config.externalServices;
    expect(gh.ports).toEqual([{ port: 80, protocol: 'http', targetPort: 443 }]);
    expect(gh.pool).toEqual(DEFAULT_POOL);
    expect(gh.tls.mode).toBe('Secured');
    expect(gh.endpoints).toEqual([]);
    expect(plain.ports).toEqual([{ port: 8080, protocol: 'http', targetPort: 8080 }]);
  });

  test('the result is deeply frozen', () => {
    const r = validateConfig({ ...MINIMAL, externalServices: [{ name: 'a', host: 'a.example' }] });
    if (!r.ok) throw new Error('invalid');
    expect(Object.isFrozen(r.config)).toBe(true);
    expect(Object.isFrozen(r.config.externalServices[0].ports[0])).toBe(true);
    expect(() => { (r.config.parent as { trafficPolicy: string }).trafficPolicy = 'Allow'; }).toThrow();
  });

  test('retry.grpcStatusCodes is optional: kept when given (0-16), absent when not', () => {
    const svc = (retry: Record<string, unknown>) => ({ ...MINIMAL, externalServices: [{ name: 'g', host: 'g.example', retry }] });
    const r = validateConfig(svc({ grpcStatusCodes: [14, 4, 0, 16] }));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.config.externalServices[0].retry?.grpcStatusCodes).toEqual([14, 4, 0, 16]);
    const plain = validateConfig(svc({ maxRetries: 1 }));
    if (!plain.ok) throw new Error(JSON.stringify(plain.problems));
    expect(plain.config.externalServices[0].retry).not.toHaveProperty('grpcStatusCodes');
    expect(problems(svc({ grpcStatusCodes: [17, -1, 1.5, '14'] })).map((p) => p.path)).toEqual([
      '$.externalServices[0].retry.grpcStatusCodes[0]', '$.externalServices[0].retry.grpcStatusCodes[1]',
      '$.externalServices[0].retry.grpcStatusCodes[2]', '$.externalServices[0].retry.grpcStatusCodes[3]',
    ]);
    expect(problems(svc({ grpcStatusCodes: 14 })).map((p) => p.path)).toEqual(['$.externalServices[0].retry.grpcStatusCodes']);
  });

  test('loadConfigFile reads and validates a file', () => {
    const file = join(tmpdir(), `egress-config-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(MINIMAL));
    expect(loadConfigFile(file).gateway.name).toBe('egress-gateway');
  });
});

describe('invalid configs', () => {
  test('ambiguousPaths must be one of its three actions, reported with the rest', () => {
    const ps = problems({ ...MINIMAL, listeners: { http: { ambiguousPaths: 'Unescape' } }, limits: { maxConcurrent: 0 } });
    const byPath = Object.fromEntries(ps.map((p) => [p.path, p]));
    expect(byPath['$.listeners.http.ambiguousPaths']).toMatchObject({ value: 'Unescape', message: 'must be one of "Reject", "UnescapeAndForward", "KeepUnchanged"' });
    expect(byPath['$.limits.maxConcurrent']).toBeDefined();
    expect(problems({ ...MINIMAL, listeners: { http: { ambiguousPaths: 3 } } })[0]).toMatchObject({ path: '$.listeners.http.ambiguousPaths', value: 3 });
    expect(problems({ ...MINIMAL, listeners: { http: { connectSni: 'Require' } } })[0])
      .toMatchObject({ path: '$.listeners.http.connectSni', value: 'Require', message: 'must be one of "RequireMatch", "MatchIfPresent"' });
  });

  test('throws with every problem at once, each with path and offending value', () => {
    const bad = {
      apiVersion: 'egress.cdk8s.io/v1',
      kind: 'EgressProxyConfig',
      gateway: { name: 'g', namespace: 'n' },
      parent: { name: 'p', namespace: 'n', trafficPolicy: 'allow', networks: [{ cidr: '10.0.0.1/8', except: [] }] },
      externalServices: [
        { name: 'gh', host: 'api..github.com', tls: { mode: 'Insecure', minVersion: 'TLS13', maxVersion: 'TLS12' } },
        { name: 'gh', host: 'ok.example', ports: [{ port: 70000 }], injectHeaders: [{ name: 'bad header', valueFile: '/x' }] },
      ],
      addressPolicy: { allowCidrs: ['10.0.0.0/33'] },
      timeouts: { connectMs: 'ten seconds' },
      limits: { maxConcurent: 5 },
    };
    const ps = problems(bad);
    const byPath = Object.fromEntries(ps.map((p) => [p.path, p]));
    expect(byPath['$.apiVersion'].value).toBe('egress.cdk8s.io/v1');
    expect(byPath['$.parent.trafficPolicy']).toMatchObject({ value: 'allow', message: 'must be one of "Allow", "Deny"' });
    expect(byPath['$.parent.networks[0].cidr'].message).toContain('did you mean "10.0.0.0/8"');
    expect(byPath['$.externalServices[0].host'].value).toBe('api..github.com');
    expect(byPath['$.externalServices[0].tls.mode'].value).toBe('Insecure');
    expect(byPath['$.externalServices[0].tls.minVersion'].message).toContain('above maxVersion');
    expect(byPath['$.externalServices[1].name'].message).toContain('unique');
    expect(byPath['$.externalServices[1].ports[0].port'].value).toBe(70000);
    expect(byPath['$.externalServices[1].injectHeaders[0].name'].value).toBe('bad header');
    expect(byPath['$.addressPolicy.allowCidrs[0]'].value).toBe('10.0.0.0/33');
    expect(byPath['$.timeouts.connectMs'].value).toBe('ten seconds');
    expect(byPath['$.limits.maxConcurent'].message).toContain('unknown field');
    expect(ps).toHaveLength(12);
  });

  test('ConfigError message lists every problem, one per line', () => {
    expect(() => parseConfigText(JSON.stringify({ ...MINIMAL, kind: 'Nope', parent: { ...MINIMAL.parent, mode: 'Audit' } }), 'cm.json')).toThrow(ConfigError);
    try {
      parseConfigText(JSON.stringify({ ...MINIMAL, kind: 'Nope', parent: { ...MINIMAL.parent, mode: 'Audit' } }), 'cm.json');
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain('cm.json: 2 problem(s)');
      expect(msg).toContain('  - $.kind: must be "EgressProxyConfig" (got "Nope")');
      expect(msg).toContain('  - $.parent.mode: must be one of "Enforce", "ReportOnly" (got "Audit")');
    }
  });

  test('not JSON, and not an object', () => {
    expect(() => parseConfigText('{ apiVersion: ')).toThrow(/not valid JSON/);
    expect(problems([])).toEqual([{ path: '$', message: 'must be an object', value: [] }]);
  });

  test('listener cross-checks: port collisions and TCP listeners naming unknown services or ports', () => {
    const ps = problems({
      ...MINIMAL,
      listeners: {
        http: { port: 8080 },
        admin: { port: 8080 },
        tcp: [{ port: 7000, externalService: 'nope', servicePort: 1 }, { port: 7001, externalService: 'db', servicePort: 9999 }],
      },
      externalServices: [{ name: 'db', host: 'db.example', ports: [{ port: 5432, protocol: 'tcp' }] }],
    });
    expect(ps.map((p) => p.path)).toEqual([
      '$.listeners.tcp[0].externalService', '$.listeners.tcp[1].servicePort', '$.listeners.admin.port',
    ]);
    expect(ps[0].message).toContain('known: db');
  });

  test('routes: kinds, regexes (the matcher\'s own compiler), Service backends without port, L4 rules with matches', () => {
    const ps = problems({
      ...MINIMAL,
      routes: [
        { kind: 'HTTPRoute', name: 'r1', namespace: 'n', rules: [{ matches: [{ path: { type: 'RegularExpression', value: '(?<=x)y' } }] }] },
        { kind: 'HTTPRoute', name: 'r2', namespace: 'n', rules: [{ backendRefs: [{ kind: 'Service', name: 'internal' }] }] },
        { kind: 'TLSRoute', name: 'r3', namespace: 'n', rules: [{ matches: [{ headers: [] }] }] },
        { kind: 'UDPRoute', name: 'r4', namespace: 'n', rules: [] },
      ],
    });
    expect(ps.map((p) => p.path)).toEqual([
      '$.routes[0].rules[0].matches[0].path.value',
      '$.routes[1].rules[0].backendRefs[0].port',
      '$.routes[2].rules[0].matches',
      '$.routes[3].kind',
    ]);
  });

  test('a route regex RE2 refuses is refused at load, with RE2\'s reason', () => {
    const ps = problems({
      ...MINIMAL,
      routes: [{ kind: 'HTTPRoute', name: 'r1', namespace: 'n', rules: [{ matches: [{ headers: [{ type: 'RegularExpression', name: 'x-id', value: '[0-9]{1001}' }] }] }] }],
    });
    expect(ps).toHaveLength(1);
    expect(ps[0].path).toMatch(/^\$\.routes\[0\]\.rules\[0\]\.matches\[0\]\.headers/);
    expect(ps[0].message).toMatch(/RE2 refuses it/);
  });

  test('bindAddress must be an IP address', () => {
    expect(problems({ ...MINIMAL, listeners: { bindAddress: 'localhost' } })).toEqual([
      { path: '$.listeners.bindAddress', message: 'must be an IP address to bind to, like "0.0.0.0" or "::"', value: 'localhost' },
    ]);
  });

  test('a client certificate without its key is refused', () => {
    const ps = problems({ ...MINIMAL, defaultTls: { clientCertFile: '/certs/tls.crt' } });
    expect(ps).toEqual([{ path: '$.defaultTls.clientKeyFile', message: 'client certificate and key must be given together', value: '/certs/tls.crt' }]);
  });

  test('injected headers may not name hop-by-hop or Host headers', () => {
    const ps = problems({ ...MINIMAL, externalServices: [{ name: 'a', host: 'a.example', injectHeaders: [{ name: 'Host', valueFile: '/f' }] }] });
    expect(ps[0].path).toBe('$.externalServices[0].injectHeaders[0].name');
  });

  test('connection settings are checked against the bounds shared with the constructs; services cannot override gateway-only timeouts', () => {
    const ps = problems({
      ...MINIMAL,
      timeouts: { clientKeepAliveMs: 50, drainDelayMs: 300_001 },
      limits: { maxClientConnections: 0 },
      externalServices: [{ name: 'a', host: 'a.example', timeouts: { connectMs: 100, drainDelayMs: 1_000 } }],
    });
    expect(ps).toEqual([
      expect.objectContaining({ path: '$.externalServices[0].timeouts.drainDelayMs', message: expect.stringMatching(/^unknown field/) }),
      { path: '$.timeouts.drainDelayMs', message: `must be an integer from 0 to ${TIMEOUT_BOUNDS.drainDelayMs.max}`, value: 300_001 },
      { path: '$.timeouts.clientKeepAliveMs', message: 'must be an integer from 100 to 3600000', value: 50 },
      { path: '$.limits.maxClientConnections', message: `must be an integer from 1 to ${LIMIT_BOUNDS.maxClientConnections.max}`, value: 0 },
    ]);
    const ok = validateConfig({ ...MINIMAL, timeouts: { clientKeepAliveMs: 100, drainDelayMs: 0 }, limits: { maxClientConnections: 1 } });
    if (!ok.ok) throw new Error(JSON.stringify(ok.problems));
    expect(ok.config.timeouts).toMatchObject({ clientKeepAliveMs: 100, drainDelayMs: 0 });
    expect(ok.config.limits).toEqual({ ...DEFAULT_LIMITS, maxClientConnections: 1 });
  });

  test('workers: 1 when left out, a whole number within the bounds shared with the constructs', () => {
    const dflt = validateConfig(MINIMAL);
    if (!dflt.ok) throw new Error(JSON.stringify(dflt.problems));
    expect(dflt.config.workers).toBe(1);
    const four = validateConfig({ ...MINIMAL, workers: 4 });
    if (!four.ok) throw new Error(JSON.stringify(four.problems));
    expect(four.config.workers).toBe(4);
    for (const bad of [0, 1.5, WORKER_BOUNDS.max + 1, '2']) {
      expect(problems({ ...MINIMAL, workers: bad })).toEqual([
        { path: '$.workers', message: `must be an integer from 1 to ${WORKER_BOUNDS.max}`, value: bad },
      ]);
    }
  });

  test('loadConfigFile on a missing file reports it as a problem', () => {
    expect(() => loadConfigFile('/nonexistent/config.json')).toThrow(/cannot read file: ENOENT/);
  });
});

describe('callers and clients', () => {
  const svc = (extra: Record<string, unknown> = {}) => ({ name: 'stripe', host: 'api.stripe.com', ...extra });
  const route = (extra: Record<string, unknown> = {}) => ({ kind: 'HTTPRoute', name: 'r', namespace: 'egress', hostnames: ['api.stripe.com'], rules: [{}], ...extra });
  const L5D = 'billing.payments.serviceaccount.identity.linkerd.cluster.local';

  test('left out: no callers section (source None applies), no clients: open to every caller', () => {
    const r = validateConfig({ ...MINIMAL, externalServices: [svc()], routes: [route()] });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect('callers' in r.config).toBe(false);
    expect('clients' in r.config.externalServices[0]).toBe(false);
    expect('clients' in r.config.routes[0]).toBe(false);
  });

  test('a partial callers section gets the shared defaults; trustedPeers stays absent unless given', () => {
    const r = validateConfig({ ...MINIMAL, callers: { source: 'Linkerd' } });
    expect(r.ok && r.config.callers).toEqual({ source: 'Linkerd', trustDomain: 'cluster.local', unknown: 'AllowUnrestricted', metricsLabel: false });
    const peers = validateConfig({ ...MINIMAL, callers: { source: 'Istio', trustedPeers: ['127.0.0.6/32', 'PodIP', '::1/128'] } });
    expect(peers.ok && peers.config.callers?.trustedPeers).toEqual(['127.0.0.6/32', 'PodIP', '::1/128']);
  });

  test('clients of every kind are kept as given, on services and routes', () => {
    const clients = [{ serviceAccount: { namespace: 'payments', name: 'ci.billing' } }, { namespace: 'ops' }, { identity: L5D }];
    const r = validateConfig({ ...MINIMAL, callers: { source: 'Linkerd' }, externalServices: [svc({ clients })], routes: [route({ clients: [{ namespace: 'payments' }] })] });
    expect(r.ok ? [] : r.problems).toEqual([]);
    if (!r.ok) return;
    expect(r.config.externalServices[0].clients).toEqual(clients);
    expect(r.config.routes[0].clients).toEqual([{ namespace: 'payments' }]);
  });

  test('every problem at once, with path and value', () => {
    const got = problems({
      ...MINIMAL,
      callers: { source: 'Consul', trustDomain: 'Cluster.Local', unknown: 'Allow', metricsLabel: 'yes', trustedPeers: ['10.0.0.0/8', 'PodIp', '127.0.0.1'], extra: 1 },
      externalServices: [
        svc({ clients: [] }),
        { name: 'b', host: 'b.example', clients: [{ namespace: 'payments', identity: L5D }, {}, { namespace: 'Payments' }, { serviceAccount: { namespace: 'ops', name: 'a_b' } }, { namespace: 'ops' }, { namespace: 'ops' }] },
      ],
      routes: [route({ clients: 'payments' })],
    });
    const byPath = Object.fromEntries(got.map((p) => [p.path, p]));
    expect(byPath['$.callers.source'].message).toBe('must be one of "None", "Linkerd", "Istio"');
    expect(byPath['$.callers.trustDomain'].value).toBe('Cluster.Local');
    expect(byPath['$.callers.unknown'].message).toBe('must be one of "AllowUnrestricted", "Deny"');
    expect(byPath['$.callers.metricsLabel'].message).toBe('must be true or false');
    expect(byPath['$.callers.extra'].message).toMatch(/unknown field/);
    expect(byPath['$.callers.trustedPeers[0]']).toMatchObject({ value: '10.0.0.0/8', message: expect.stringContaining('inside loopback') });
    expect(byPath['$.callers.trustedPeers[1]'].value).toBe('PodIp');
    expect(byPath['$.callers.trustedPeers[2]'].message).toMatch(/missing prefix length/);
    expect(byPath['$.externalServices[0].clients'].message).toBe('must list at least one client; leave clients out to open it to every caller');
    expect(byPath['$.externalServices[1].clients[0]'].message).toBe('must set exactly one of serviceAccount, namespace, identity (sets namespace, identity)');
    expect(byPath['$.externalServices[1].clients[1]'].message).toBe('must set exactly one of serviceAccount, namespace, identity');
    expect(byPath['$.externalServices[1].clients[2].namespace'].value).toBe('Payments');
    expect(byPath['$.externalServices[1].clients[3].serviceAccount.name'].value).toBe('a_b');
    expect(byPath['$.externalServices[1].clients[5]'].message).toBe('duplicates $.externalServices[1].clients[4]');
    expect(byPath['$.routes[0].clients'].message).toBe('must be an array');
    expect(got).toHaveLength(15);
  });

  test('an identity must be one the source can produce in its trust domain, or nobody could match it', () => {
    const istio = problems({ ...MINIMAL, callers: { source: 'Istio', trustDomain: 'prod.example' }, externalServices: [svc({ clients: [{ identity: L5D }, { identity: 'spiffe://cluster.local/ns/a/sa/b' }] })] });
    expect(istio.map((p) => p.path)).toEqual(['$.externalServices[0].clients[0].identity', '$.externalServices[0].clients[1].identity']);
    expect(istio[0].message).toBe('must be a SPIFFE ID of trust domain "prod.example": spiffe://prod.example/ns/<namespace>/sa/<serviceaccount>');
    const linkerd = problems({ ...MINIMAL, callers: { source: 'Linkerd' }, routes: [route({ clients: [{ identity: 'spiffe://cluster.local/ns/a/sa/b' }] })] });
    expect(linkerd[0]).toMatchObject({ path: '$.routes[0].clients[0].identity', message: expect.stringContaining('<serviceaccount>.<namespace>.serviceaccount.identity.linkerd.cluster.local') });
  });
});
