import { Chart, Duration, Testing } from 'cdk8s';
import { EgressGateway } from '../src/egress-gateway';
import {
  ExternalService, ExternalServiceProtocol, IExternalServiceRenderer, InjectedHeader, RetryCondition,
} from '../src/external-service';
import { DEFAULT_POOL, DEFAULT_RETRY } from '../src/model/defaults';
import { CertificateSource, TlsOrigination, TlsVerification } from '../src/tls';
import { errorOf } from './util/thrown';

function chart(): Chart {
  return new Chart(Testing.app(), 'test');
}

describe('ExternalService', () => {
  test('defaults: port 80 HTTP to 443 with verified TLS, the host itself as endpoint', () => {
    const svc = new ExternalService(chart(), 'GitHub', { host: 'api.github.com' });
    expect(svc.name).toBe('github');
    expect(svc.namespace).toBe('default');
    expect(svc.isWildcard).toBe(false);
    expect(svc.tls.enabled).toBe(true);
    expect(svc._toSpec()).toEqual({
      name: 'github',
      host: 'api.github.com',
      ports: [{ port: 80, protocol: 'http', targetPort: 443 }],
      endpoints: [],
      tls: TlsOrigination.originate()._toSpec(),
      timeouts: undefined,
      retry: undefined,
      pool: DEFAULT_POOL,
      injectHeaders: [],
    });
  });

  test('renders ports, endpoints, timeouts, pool and retries', () => {
    const svc = new ExternalService(chart(), 'partner', {
      host: '*.s3.amazonaws.com',
      name: 's3',
      ports: [
        { port: 80 },
        { port: 9000, protocol: ExternalServiceProtocol.GRPC },
        { port: 5432, protocol: ExternalServiceProtocol.TCP },
        { port: 8080, protocol: ExternalServiceProtocol.HTTP2, targetPort: 8443 },
      ],
      endpoints: [
        { address: 's3.eu-west-1.amazonaws.com' },
        { address: '203.0.113.10', port: 8443, priority: 1 },
        { address: '2001:db8::10', priority: 2 },
      ],
      timeouts: { connect: Duration.seconds(2), total: Duration.minutes(2) },
      connectionPool: { maxConnections: 16, keepAlive: Duration.seconds(5) },
      retries: { maxRetries: 3, retryOnConditions: [RetryCondition.TIMEOUT], perTryTimeout: Duration.seconds(1) },
    });
    const spec = svc._toSpec();
    expect(svc.isWildcard).toBe(true);
    expect(spec.ports).toEqual([
      { port: 80, protocol: 'http', targetPort: 443 },
      { port: 9000, protocol: 'grpc', targetPort: 9000 },
      { port: 5432, protocol: 'tcp', targetPort: 5432 },
      { port: 8080, protocol: 'http2', targetPort: 8443 },
    ]);
    expect(spec.endpoints).toEqual([
      { address: 's3.eu-west-1.amazonaws.com', port: undefined, priority: 0 },
      { address: '203.0.113.10', port: 8443, priority: 1 },
      { address: '2001:db8::10', port: undefined, priority: 2 },
    ]);
    expect(spec.timeouts).toEqual({ connectMs: 2000, totalMs: 120000 });
    expect(spec.pool).toEqual({ maxConnections: 16, keepAliveTimeoutMs: 5000 });
    expect(spec.retry).toEqual({ ...DEFAULT_RETRY, maxRetries: 3, conditions: ['timeout'], perTryTimeoutMs: 1000 });
  });

  test('a plaintext service keeps its port as target port', () => {
    const svc = new ExternalService(chart(), 'legacy', { host: 'legacy.example.com', tls: TlsOrigination.disabled() });
    expect(svc._toSpec().ports).toEqual([{ port: 80, protocol: 'http', targetPort: 80 }]);
    expect(svc._toSpec().tls.enabled).toBe(false);
  });

  test('injected headers render file paths of mounted Secrets and list the mounts', () => {
    const svc = new ExternalService(chart(), 'stripe', {
      host: 'api.stripe.com',
      injectHeaders: [InjectedHeader.fromSecret('Authorization', 'stripe-api', 'authorization')],
      tls: TlsOrigination.originate({ caCertificate: CertificateSource.fromConfigMap('corp-ca', 'ca.crt') }),
    });
    expect(svc._toSpec().injectHeaders).toEqual([{ name: 'Authorization', valueFile: '/var/run/egress/secrets/stripe-api/authorization' }]);
    expect(svc._mounts()).toEqual([{ kind: 'configmap', name: 'corp-ca' }, { kind: 'secret', name: 'stripe-api' }]);
    expect(JSON.stringify(svc._toSpec())).not.toContain('secretName');
  });

  test('with a gateway: lives in the gateway namespace and is registered with it', () => {
    const c = chart();
    const gw = new EgressGateway(c, 'egress', { namespace: 'edge' });
    const svc = new ExternalService(c, 'github', { host: 'api.github.com', gateway: gw });
    expect(svc.namespace).toBe('edge');
    expect(svc.gateway).toBe(gw);
    expect(gw.externalServices).toEqual([svc]);
    expect(gw._renderConfig().externalServices.map((s) => s.host)).toEqual(['api.github.com']);
  });

  test('with a gateway elsewhere in the tree: its Secrets are mounted into that gateway\'s pods', () => {
    const c = chart();
    const gw = new EgressGateway(c, 'egress');
    new ExternalService(c, 'stripe', { host: 'api.stripe.com', gateway: gw, injectHeaders: [InjectedHeader.fromSecret('Authorization', 'stripe-api', 'key')] });
    const deployment = Testing.synth(c).find((o: any) => o.kind === 'Deployment');
    expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'secret-stripe-api', secret: { secretName: 'stripe-api', defaultMode: 0o440 } });
    expect(deployment.spec.template.spec.containers[0].volumeMounts)
      .toContainEqual({ name: 'secret-stripe-api', mountPath: '/var/run/egress/secrets/stripe-api', readOnly: true });
  });

  describe('renderers', () => {
    class Recorder implements IExternalServiceRenderer {
      public readonly seen: string[] = [];
      public bind(service: ExternalService): void {
        this.seen.push(`${service.name} ${service.host} ${service.namespace} ${service.ports.map((p) => `${p.port}/${p.protocol}->${p.targetPort}`).join(',')} ${service.tls.verification.mode}`);
      }
    }

    test('props renderers are bound once, after the service is complete', () => {
      const r = new Recorder();
      new ExternalService(chart(), 'github', { host: 'api.github.com', renderers: [r] });
      expect(r.seen).toEqual(['github api.github.com default 80/http->443 Secured']);
    });

    test('addRenderer binds and returns the renderer', () => {
      const r = new Recorder();
      const svc = new ExternalService(chart(), 'github', { host: 'api.github.com', tls: TlsOrigination.originate({ verification: TlsVerification.skipSan() }) });
      expect(svc.addRenderer(r)).toBe(r);
      expect(r.seen).toEqual(['github api.github.com default 80/http->443 SkipSAN']);
    });

    test('throws when the same renderer is added twice', () => {
      const r = new Recorder();
      const svc = new ExternalService(chart(), 'github', { host: 'api.github.com', renderers: [r] });
      expect(() => svc.addRenderer(r)).toThrow(/ExternalService "test\/github": this renderer is already bound/);
      expect(r.seen).toHaveLength(1);
    });
  });

  describe('host validation', () => {
    test('throws when the host has an empty label, suggesting the fix', () => {
      expect(() => new ExternalService(chart(), 'github', { host: 'api..github.com' }))
        .toThrow('ExternalService "test/github": \'host\' "api..github.com" is not a valid DNS name (empty label); did you mean "api.github.com"?');
    });

    test.each([
      ['https://api.github.com/v3', 'has a URL scheme', 'api.github.com'],
      ['API.GitHub.com', 'upper-case letters', 'api.github.com'],
      ['api.github.com:443', 'has a port', 'api.github.com'],
      ['api_v2.example.com', 'label "api_v2" has character "_"', 'api-v2.example.com'],
      ['-api.example.com', 'label "-api" starts or ends with "-"', 'api.example.com'],
    ])('throws when the host is %j (%s)', (host, reason, suggestion) => {
      const message = errorOf(() => new ExternalService(chart(), 'x', { host }));
      expect(message).toContain(`'host' ${JSON.stringify(host)} is not a valid DNS name (${reason}`);
      expect(message).toContain(`did you mean ${JSON.stringify(suggestion)}?`);
    });

    test('throws when the host is an IP address, pointing at endpoints', () => {
      expect(() => new ExternalService(chart(), 'x', { host: '203.0.113.7' }))
        .toThrow(/'host' "203.0.113.7" is an IP address, not a DNS name; give the DNS name clients use and list the address under 'endpoints'/);
    });

    test('throws when the wildcard is not the whole leftmost label', () => {
      expect(() => new ExternalService(chart(), 'x', { host: 'api.*.example.com' }))
        .toThrow(/a wildcard must be the whole leftmost label/);
      expect(() => new ExternalService(chart(), 'y', { host: '*api.example.com' }))
        .toThrow(/a wildcard must be the whole leftmost label/);
    });

    test('throws when a label is longer than 63 characters', () => {
      expect(() => new ExternalService(chart(), 'x', { host: `${'a'.repeat(64)}.example.com` })).toThrow(/is longer than 63 characters/);
    });
  });

  test('throws when several props are wrong, listing every problem in one error', () => {
    const message = errorOf(() => new ExternalService(chart(), 'bad', {
      host: 'api..example.com',
      ports: [{ port: 0 }, { port: 443, targetPort: 70000 }],
      endpoints: [{ address: 'not an address' }, { address: '10.0.0.1', priority: -1 }],
      connectionPool: { maxConnections: 0 },
      timeouts: { connect: Duration.millis(1.5) },
    }));
    expect(message.split('\n')[0]).toBe('ExternalService "test/bad": 7 problems:');
    expect(message).toContain("'host' \"api..example.com\"");
    expect(message).toContain("'ports[0].port' 0 must be a whole number from 1 to 65535");
    expect(message).toContain("'ports[1].targetPort' 70000");
    expect(message).toContain("'endpoints[0].address' \"not an address\" is neither an IP address nor a valid DNS name (has whitespace)");
    expect(message).toContain("'endpoints[1].priority' -1 must be a whole number, zero or more");
    expect(message).toContain("'connectionPool.maxConnections' 0");
    expect(message).toContain("'timeouts.connect'");
  });

  test('throws when a port is listed twice', () => {
    expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', ports: [{ port: 80 }, { port: 80, protocol: ExternalServiceProtocol.HTTP2 }] }))
      .toThrow(/'ports\[1\].port' 80 is listed twice/);
  });

  test('throws when ports is empty', () => {
    expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', ports: [] })).toThrow(/'ports' \[\] is empty/);
  });

  test('throws when the name is not a DNS label', () => {
    expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', name: 'My Service' }))
      .toThrow(/'name' "My Service" is not a DNS label.*use e.g. "my-service"/);
  });

  test('throws when the namespace differs from the gateway\'s', () => {
    const c = chart();
    const gw = new EgressGateway(c, 'egress');
    expect(() => new ExternalService(c, 'x', { host: 'a.example.com', gateway: gw, namespace: 'apps' }))
      .toThrow(/'namespace' "apps" differs from the gateway's namespace "egress"/);
  });

  describe('retries', () => {
    test('throws when maxRetries is above 10', () => {
      expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', retries: { maxRetries: 11 } }))
        .toThrow(/'retries.maxRetries' 11 must be a whole number from 0 to 10/);
    });

    test('throws when the budget ratio is not a fraction', () => {
      expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', retries: { budgetRatio: 1.5 } }))
        .toThrow(/'retries.budgetRatio' 1.5 must be a fraction from 0 to 1/);
    });

    test('throws when backoffBase is longer than backoffMax', () => {
      expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', retries: { backoffBase: Duration.seconds(2), backoffMax: Duration.seconds(1) } }))
        .toThrow(/'retries.backoffBase' "2000ms" is longer than 'retries.backoffMax' \(1000ms\)/);
    });

    test('throws when a status is not an HTTP status', () => {
      expect(() => new ExternalService(chart(), 'x', { host: 'a.example.com', retries: { retryOnStatuses: [503, 99] } }))
        .toThrow(/'retries.retryOnStatuses' 99 is not an HTTP status/);
    });
  });

  describe('injected headers', () => {
    test('throws when a header is injected twice', () => {
      expect(() => new ExternalService(chart(), 'x', {
        host: 'a.example.com',
        injectHeaders: [InjectedHeader.fromSecret('X-Api-Key', 's', 'k'), InjectedHeader.fromSecret('x-api-key', 's', 'k2')],
      })).toThrow(/'injectHeaders' "x-api-key" is injected twice/);
    });

    test('throws when credentials would travel in plaintext', () => {
      expect(() => new ExternalService(chart(), 'x', {
        host: 'a.example.com',
        tls: TlsOrigination.disabled(),
        injectHeaders: [InjectedHeader.fromSecret('Authorization', 's', 'k')],
      })).toThrow(/would send credentials from Secrets in plaintext because 'tls' is TlsOrigination.disabled\(\)/);
    });

    test('throws when every port is TCP', () => {
      expect(() => new ExternalService(chart(), 'x', {
        host: 'a.example.com',
        ports: [{ port: 5432, protocol: ExternalServiceProtocol.TCP }],
        injectHeaders: [InjectedHeader.fromSecret('Authorization', 's', 'k')],
      })).toThrow(/has no effect: every port is TCP/);
    });

    test('throws when the header is managed by the proxy', () => {
      expect(() => InjectedHeader.fromSecret('Host', 's', 'k')).toThrow(/'headerName' "Host" is managed by the proxy/);
    });

    test('throws when the header name is not a token', () => {
      expect(() => InjectedHeader.fromSecret('X Api Key', 's', 'k')).toThrow(/'headerName' "X Api Key" is not an HTTP header name/);
    });

    test('throws when the Secret reference is malformed, listing both problems', () => {
      expect(() => InjectedHeader.fromSecret('Authorization', 'Bad_Name', 'a/b')).toThrow(/2 problems:[\s\S]*'secretName' "Bad_Name"[\s\S]*'key' "a\/b"/);
    });
  });
});
