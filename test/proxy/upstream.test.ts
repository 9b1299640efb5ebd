// Upstream planning: which port, TLS and endpoints a decided request uses, and the candidate
// order (priority groups, vetting, refusal reported over outage).
import { loopbackDialer, loopbackResolver, sample, testConfig, testService } from './helpers';
import { validateConfig } from '../../src/proxy/config';
import type { Decision, Target } from '../../src/proxy/decide';
import { decide } from '../../src/proxy/decide';
import { EgressError } from '../../src/proxy/errors';
import { silentLogger } from '../../src/proxy/log';
import { ProxyMetrics } from '../../src/proxy/metrics';
import { cachingResolver } from '../../src/proxy/resolve';
import { RuntimeState, type ProxyContext } from '../../src/proxy/runtime';
import { Candidates, candidates, planHttp, planTunnel } from '../../src/proxy/upstream';

function state(overrides: Record<string, unknown>) {
  const r = validateConfig(testConfig(overrides));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return new RuntimeState(r.config, 1);
}

const http = (host: string, port = 80): Target => ({ protocol: 'http', host, port, method: 'GET', path: '/', headers: {} });

describe('planHttp', () => {
  test('undeclared host: verified TLS to 443 with SNI = host', () => {
    const s = state({});
    const plan = planHttp(s, decide(s.policy, http('api.github.com')), http('api.github.com'));
    expect(plan).toMatchObject({ kind: 'external', host: 'api.github.com', port: 443, servername: 'api.github.com', exempt: false });
    expect(plan.tls).toBeDefined();
    expect(plan.groups).toEqual([[{ host: 'api.github.com', port: 443 }]]);
  });

  test('declared service: port map, serverName override, endpoints', () => {
    const s = state({
      externalServices: [testService('api', 'api.example', {
        ports: [{ port: 80, targetPort: 8443 }], tls: { serverName: 'edge.example' }, endpoints: [{ address: '127.0.0.9', priority: 0 }],
      })],
    });
    const plan = planHttp(s, decide(s.policy, http('api.example')), http('api.example'));
    expect(plan).toMatchObject({ port: 8443, servername: 'edge.example', host: 'api.example' });
    expect(plan.groups).toEqual([[{ host: '127.0.0.9', port: 8443 }]]);
  });

  test('plaintext service keeps the addressed port and has no TLS', () => {
    const s = state({ externalServices: [testService('p', 'plain.example', { tls: { enabled: false }, ports: [{ port: 80 }] })] });
    const plan = planHttp(s, decide(s.policy, http('plain.example')), http('plain.example'));
    expect(plan.tls).toBeUndefined();
    expect(plan.port).toBe(80);
  });

  test('Service backend: plaintext, exempt from vetting, Host stays the requested name', () => {
    const s = state({});
    const decision = {
      action: 'allow',
      reason: 'route-matched',
      reportOnly: false,
      route: { group: '', kind: 'HTTPRoute', namespace: 'n', name: 'r' },
      backend: { kind: 'Service', name: 'internal', namespace: 'n', port: 8080, weight: 1, host: 'internal.n.svc.cluster.local' },
    } as Decision;
    const plan = planHttp(s, decision, http('google.com'));
    expect(plan).toMatchObject({ kind: 'service', host: 'internal.n.svc.cluster.local', port: 8080, hostHeader: 'google.com', exempt: true });
    expect(plan.tls).toBeUndefined();
  });

  test('tunnels keep the requested port unless the service maps it', () => {
    const s = state({ externalServices: [testService('api', 'api.example', { ports: [{ port: 443, protocol: 'tcp', targetPort: 9443 }] })] });
    const t: Target = { protocol: 'tls', host: 'api.example', port: 443 };
    expect(planTunnel(s, decide(s.policy, t), t, 443).port).toBe(9443);
    const other: Target = { protocol: 'tls', host: 'other.example', port: 443 };
    expect(planTunnel(s, decide(s.policy, other), other, 443).port).toBe(443);
  });
});

describe('candidates', () => {
  function ctx(names: Record<string, string | string[]>): ProxyContext {
    return { resolver: loopbackResolver(names).resolve, dial: loopbackDialer().dial, logger: silentLogger(), metrics: new ProxyMetrics() };
  }

  test('priority groups in order, refused answers skipped', async () => {
    const s = state({
      externalServices: [testService('api', 'api.example', {
        endpoints: [{ address: 'backup.example', priority: 2 }, { address: 'primary.example', priority: 1 }],
      })],
    });
    const plan = planHttp(s, decide(s.policy, http('api.example')), http('api.example'));
    const got: string[] = [];
    for await (const c of candidates(ctx({ 'primary.example': ['10.0.0.1', '127.0.0.2'], 'backup.example': '127.0.0.3' }), s, plan)) got.push(`${c.host}=${c.address}`);
    expect(got).toEqual(['primary.example=127.0.0.2', 'backup.example=127.0.0.3']);
  });

  test('when nothing is left, a refusal is reported rather than a DNS failure', async () => {
    const s = state({
      externalServices: [testService('api', 'api.example', {
        endpoints: [{ address: 'refused.example', priority: 1 }, { address: 'missing.example', priority: 2 }],
      })],
    });
    const plan = planHttp(s, decide(s.policy, http('api.example')), http('api.example'));
    const run = async () => {
      for await (const _ of candidates(ctx({ 'refused.example': '169.254.169.254' }), s, plan)) { /* none */ }
    };
    await expect(run()).rejects.toEqual(expect.objectContaining({ code: 'ADDRESS_REFUSED' }));
    await expect(run()).rejects.toBeInstanceOf(EgressError);
  });

  test('an answer in hand (IP literal, cached resolution) is handed over without a promise; a name to resolve gives one', async () => {
    const s = state({
      externalServices: [testService('api', 'api.example', {
        endpoints: [{ address: '127.0.0.4', priority: 1 }, { address: 'named.example', priority: 2 }],
      })],
    });
    const plan = planHttp(s, decide(s.policy, http('api.example')), http('api.example'));
    const recording = loopbackResolver({ 'named.example': '127.0.0.5' });
    const c: ProxyContext = { ...ctx({}), resolver: cachingResolver(recording.resolve) };
    const first = new Candidates(c, s, plan);
    const literal = first.next();
    expect(literal).not.toBeInstanceOf(Promise);
    expect(literal).toMatchObject({ host: '127.0.0.4', address: '127.0.0.4', dnsMs: 0 });
    const named = first.next();
    expect(named).toBeInstanceOf(Promise);
    expect(await named).toMatchObject({ host: 'named.example', address: '127.0.0.5' });
    expect(first.next()).toBeUndefined();
    // Nothing failed to resolve: the caller reports its own connect failure.
    expect(first.failure()).toBeUndefined();

    // The name's answer is cached now: a second walk waits on nothing and asks the resolver nothing.
    const second = new Candidates(c, s, plan);
    expect(second.next()).toMatchObject({ address: '127.0.0.4' });
    const cached = second.next();
    expect(cached).not.toBeInstanceOf(Promise);
    expect(cached).toMatchObject({ address: '127.0.0.5' });
    expect(recording.calls).toEqual(['named.example']);
  });

  test('a refused literal in hand is skipped, counted and reported when nothing else is left', async () => {
    const s = state({ externalServices: [testService('api', 'api.example', { endpoints: [{ address: '169.254.169.254' }] })] });
    const plan = planHttp(s, decide(s.policy, http('api.example')), http('api.example'));
    const c = ctx({});
    const walk = new Candidates(c, s, plan);
    expect(walk.next()).toBeUndefined();
    expect(walk.failure()).toEqual(expect.objectContaining({ code: 'ADDRESS_REFUSED' }));
    expect(sample(await c.metrics.registry.metrics(), 'egress_address_refusals_total', { reason: 'all-answers-refused' })).toBe(1);
  });
});
