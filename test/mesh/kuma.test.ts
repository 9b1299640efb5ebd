import { PLAINTEXT, serviceSpec } from './spec-fixture';
import { validateObjects } from './validate';
import {
  DEFAULT_KUMA_HOSTNAME_TEMPLATE, KUMA_MESH_LABEL, KUMA_SERVICE_LABEL, KumaRenderOptions, renderKuma,
} from '../../src/mesh/kuma';
import type { MeshRenderInput, TlsSourceRefs } from '../../src/mesh/render-input';
import { DEFAULT_RETRY } from '../../src/model/defaults';
import { thrownMessage } from '../util/thrown';

const OPTIONS: KumaRenderOptions = { name: 'httpbin', namespace: 'kuma-system', mesh: 'default', hostnameTemplate: DEFAULT_KUMA_HOSTNAME_TEMPLATE };
const render = (input: MeshRenderInput, options: Partial<KumaRenderOptions> = {}) => renderKuma(input, { ...OPTIONS, ...options });
const only = (input: MeshRenderInput, options: Partial<KumaRenderOptions> = {}) => {
  const out = render(input, options);
  expect(out.meshExternalServices).toHaveLength(1);
  return out.meshExternalServices[0];
};

describe('renderKuma', () => {
  test('plaintext TCP: match, endpoint at the host and target port, no tls, mesh label, system namespace', () => {
    const mes = only({ service: serviceSpec({ name: 'tcpbin', host: 'tcpbin.com', ports: [{ port: 4242, protocol: 'tcp', targetPort: 4242 }] }, PLAINTEXT) }, { name: 'tcpbin' });
    expect(mes).toEqual({
      apiVersion: 'kuma.io/v1alpha1',
      kind: 'MeshExternalService',
      metadata: { name: 'tcpbin', namespace: 'kuma-system', labels: { [KUMA_MESH_LABEL]: 'default', [KUMA_SERVICE_LABEL]: 'tcpbin' } },
      spec: { match: { type: 'HostnameGenerator', port: 4242, protocol: 'tcp' }, endpoints: [{ address: 'tcpbin.com', port: 4242 }] },
    });
  });

  test('the mesh label and namespace follow the options', () => {
    const mes = only({ service: serviceSpec() }, { mesh: 'payments', namespace: 'kong-mesh-system' });
    expect(mes.metadata.labels[KUMA_MESH_LABEL]).toBe('payments');
    expect(mes.metadata.namespace).toBe('kong-mesh-system');
  });

  test('HTTPS: client port 80 matched in http, endpoint on 443, TLS with the default versions and Secured', () => {
    const mes = only({ service: serviceSpec() });
    expect(mes.spec.match).toEqual({ type: 'HostnameGenerator', port: 80, protocol: 'http' });
    expect(mes.spec.endpoints).toEqual([{ address: 'httpbin.org', port: 443 }]);
    expect(mes.spec.tls).toEqual({
      enabled: true,
      allowRenegotiation: false,
      version: { min: 'TLS12', max: 'TLSAuto' },
      verification: { mode: 'Secured' },
    });
  });

  test.each(['http', 'http2', 'grpc', 'tcp'] as const)('protocol %s is matched as itself', (protocol) => {
    const mes = only({ service: serviceSpec({ ports: [{ port: 9001, protocol, targetPort: 9001 }] }) });
    expect(mes.spec.match.protocol).toBe(protocol);
  });

  test.each(['Secured', 'SkipSAN', 'SkipCA', 'SkipAll'] as const)('verification mode %s is carried over', (mode) => {
    expect(only({ service: serviceSpec({}, { mode }) }).spec.tls?.verification.mode).toBe(mode);
  });

  test.each([
    ['TLS10', 'TLS11'], ['TLS12', 'TLS13'], ['TLS13', 'TLS13'], ['TLSAuto', 'TLSAuto'],
  ] as const)('versions min %s max %s are carried over', (min, max) => {
    expect(only({ service: serviceSpec({}, { minVersion: min, maxVersion: max }) }).spec.tls?.version).toEqual({ min, max });
  });

  test('allowRenegotiation, serverName and Exact/Prefix SANs are carried over', () => {
    const tls = only({
      service: serviceSpec({}, {
        allowRenegotiation: true,
        serverName: 'origin.httpbin.org',
        subjectAltNames: [{ type: 'Exact', value: 'httpbin.org' }, { type: 'Prefix', value: 'spiffe://httpbin/' }],
      }),
    }).spec.tls!;
    expect(tls.allowRenegotiation).toBe(true);
    expect(tls.verification.serverName).toBe('origin.httpbin.org');
    expect(tls.verification.subjectAltNames).toEqual([{ type: 'Exact', value: 'httpbin.org' }, { type: 'Prefix', value: 'spiffe://httpbin/' }]);
  });

  test('CA, client certificate and key from Kuma Secrets become secret references', () => {
    const tlsSources: TlsSourceRefs = {
      ca: { kind: 'Secret', name: 'tcpbin-ca', key: 'value' },
      clientCert: { kind: 'Secret', name: 'tcpbin-client-cert', key: 'value' },
      clientKey: { kind: 'Secret', name: 'tcpbin-client-key', key: 'value' },
    };
    const v = only({ service: serviceSpec(), tlsSources }).spec.tls!.verification;
    expect(v.caCert).toEqual({ secret: 'tcpbin-ca' });
    expect(v.clientCert).toEqual({ secret: 'tcpbin-client-cert' });
    expect(v.clientKey).toEqual({ secret: 'tcpbin-client-key' });
  });

  test('an inline CA becomes inlineString, from the sources or from the model alone', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(only({ service: serviceSpec(), tlsSources: { ca: { kind: 'Inline', pem } } }).spec.tls!.verification.caCert).toEqual({ inlineString: pem });
    expect(only({ service: serviceSpec({}, { caPem: pem }) }).spec.tls!.verification.caCert).toEqual({ inlineString: pem });
  });

  test('endpoints elsewhere keep the host as SNI; their ports default to the target port; priorities map', () => {
    const mes = only({
      service: serviceSpec({
        endpoints: [{ address: '203.0.113.10', priority: 0 }, { address: 'backup.httpbin.org', port: 8443, priority: 1 }],
      }),
    });
    expect(mes.spec.endpoints).toEqual([
      { address: '203.0.113.10', port: 443, priority: 0 },
      { address: 'backup.httpbin.org', port: 8443, priority: 1 },
    ]);
    expect(mes.spec.tls?.verification.serverName).toBe('httpbin.org');
  });

  test('endpoints all at priority 0 render without the priority field', () => {
    const mes = only({ service: serviceSpec({ endpoints: [{ address: '203.0.113.10', priority: 0 }] }) });
    expect(mes.spec.endpoints).toEqual([{ address: '203.0.113.10', port: 443 }]);
  });

  test('several ports become one MeshExternalService per port, named <name>-<port>', () => {
    const out = render({
      service: serviceSpec({ ports: [{ port: 80, protocol: 'http', targetPort: 443 }, { port: 9001, protocol: 'grpc', targetPort: 9001 }] }),
    });
    expect(out.meshExternalServices.map((m) => [m.metadata.name, m.spec.match.port, m.spec.match.protocol, m.spec.endpoints[0].port]))
      .toEqual([['httpbin-80', 80, 'http', 443], ['httpbin-9001', 9001, 'grpc', 9001]]);
    // One generator selects both by the service label.
    expect(out.hostnameGenerator?.spec.selector.meshExternalService.matchLabels).toEqual({ [KUMA_SERVICE_LABEL]: 'httpbin' });
    expect(out.meshExternalServices.every((m) => m.metadata.labels[KUMA_SERVICE_LABEL] === 'httpbin')).toBe(true);
  });

  test('HostnameGenerator: template and selector; none without a template', () => {
    const out = render({ service: serviceSpec() }, { hostnameTemplate: '{{ .DisplayName }}.ext.example' });
    expect(out.hostnameGenerator).toEqual({
      apiVersion: 'kuma.io/v1alpha1',
      kind: 'HostnameGenerator',
      metadata: { name: 'httpbin', namespace: 'kuma-system', labels: { [KUMA_SERVICE_LABEL]: 'httpbin' } },
      spec: { selector: { meshExternalService: { matchLabels: { [KUMA_SERVICE_LABEL]: 'httpbin' } } }, template: '{{ .DisplayName }}.ext.example' },
    });
    expect(render({ service: serviceSpec() }, { hostnameTemplate: undefined }).hostnameGenerator).toBeUndefined();
  });

  test('a retry policy with zero retries is not an error', () => {
    expect(() => render({ service: serviceSpec({ retry: { ...DEFAULT_RETRY, maxRetries: 0 } }) })).not.toThrow();
  });

  describe('throws', () => {
    const throwsWith = (input: MeshRenderInput, ...parts: (string | RegExp)[]) => {
      const message = thrownMessage(() => render(input));
      expect(message).not.toBe('');
      expect(message).toMatch(/Kuma/);
      for (const p of parts) expect(message).toMatch(p);
    };

    test('throws when the host is a wildcard', () => {
      throwsWith({ service: serviceSpec({ host: '*.httpbin.org' }) }, '\'host\' "*.httpbin.org"', /MeshPassthrough/);
    });
    test('throws when the CA comes from a ConfigMap', () => {
      throwsWith({ service: serviceSpec(), tlsSources: { ca: { kind: 'ConfigMap', name: 'ca', key: 'ca.crt' } } }, '\'tls.caCertificate\'', /ConfigMap ca key ca\.crt/);
    });
    test('throws when a Secret key is not Kuma\'s "value"', () => {
      throwsWith({ service: serviceSpec(), tlsSources: { clientCert: { kind: 'Secret', name: 'client', key: 'tls.crt' }, clientKey: { kind: 'Secret', name: 'client', key: 'value' } } },
        '\'tls.clientCertificate\'', /key "value"/, /system\.kuma\.io\/secret/);
    });
    test('throws when TLS files are given without their Kubernetes sources', () => {
      throwsWith({ service: serviceSpec({}, { caFile: '/etc/egress/secret/ca/ca.crt' }) }, '\'tls.caCertificate\' "/etc/egress/secret/ca/ca.crt"');
    });
    test('throws when retries are set', () => {
      throwsWith({ service: serviceSpec({ retry: DEFAULT_RETRY }) }, '\'retry\'', /egress gateway/);
    });
    test('throws when per-service timeouts are set', () => {
      throwsWith({ service: serviceSpec({ timeouts: { connectMs: 1000 } }) }, '\'timeouts\' {"connectMs":1000}');
    });
    test('throws when headers are injected', () => {
      throwsWith({ service: serviceSpec({ injectHeaders: [{ name: 'Authorization', valueFile: '/x' }] }) }, '\'injectHeaders\' ["Authorization"]');
    });
    test('throws when the pool is tuned', () => {
      throwsWith({ service: serviceSpec({ pool: { maxConnections: 8, keepAliveTimeoutMs: 30_000 } }) }, '\'pool\'');
    });
    test('throws when an endpoint priority is above 128', () => {
      throwsWith({ service: serviceSpec({ endpoints: [{ address: 'a.httpbin.org', priority: 200 }] }) }, '\'endpoints[0].priority\' 200', /0\.\.128/);
    });
    test('throws when the name is not a DNS label', () => {
      expect(() => render({ service: serviceSpec() }, { name: 'x'.repeat(64) })).toThrow(/'name' "x{64}"/);
    });
    test('throws once with every problem listed', () => {
      expect(() => render({ service: serviceSpec({ host: '*.httpbin.org', retry: DEFAULT_RETRY }) })).toThrow(/2 problems:\n {2}- 'host'.*\n {2}- 'retry'/);
    });
  });

  test('the rendered objects pass the strict validator', () => {
    const out = render({
      service: serviceSpec({
        ports: [{ port: 80, protocol: 'http', targetPort: 443 }, { port: 4244, protocol: 'tcp', targetPort: 4244 }],
        endpoints: [{ address: 'httpbin.org', priority: 0 }, { address: '203.0.113.7', port: 8443, priority: 2 }],
      }, {
        mode: 'SkipSAN',
        minVersion: 'TLS12',
        maxVersion: 'TLS13',
        allowRenegotiation: true,
        serverName: 'httpbin.org',
        subjectAltNames: [{ type: 'Exact', value: 'httpbin.org' }, { type: 'Prefix', value: 'httpbin' }],
      }),
      tlsSources: {
        ca: { kind: 'Inline', pem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' },
        clientCert: { kind: 'Secret', name: 'client-cert', key: 'value' },
        clientKey: { kind: 'Secret', name: 'client-key', key: 'value' },
      },
    });
    const result = validateObjects([...out.meshExternalServices, out.hostnameGenerator!]);
    expect(result.output).not.toMatch(/FAIL/);
    expect(result).toMatchObject({ passed: 3, failed: 0, messages: [] });
  });

  test('the validator run can fail: an unknown field is reported', () => {
    const mes = only({ service: serviceSpec() });
    const result = validateObjects([{ ...mes, spec: { ...mes.spec, retries: 3 } }]);
    expect(result).toMatchObject({ passed: 0, failed: 1 });
    expect(result.messages).toEqual([expect.stringMatching(/^MeshExternalService \S+ \(objects\.yaml#0\) \/spec\/retries: unknown field "retries".*\[unknown-field\]$/)]);
  });
});
