import { PLAINTEXT, serviceSpec } from './spec-fixture';
import { validateObjects } from './validate';
import {
  OsmEgressRenderOptions, renderOsmEgress, renderOsmMeshConfig, SMI_SPECS_API_GROUP,
} from '../../src/mesh/osm';
import type { MeshRenderInput } from '../../src/mesh/render-input';
import { DEFAULT_RETRY } from '../../src/model/defaults';
import { expectThrownMessage } from '../util/thrown';

const OPTIONS: OsmEgressRenderOptions = { name: 'httpbin', namespace: 'curl', sources: [{ name: 'curl', namespace: 'curl' }] };
const render = (input: MeshRenderInput, options: Partial<OsmEgressRenderOptions> = {}) => renderOsmEgress(input, { ...OPTIONS, ...options });

describe('renderOsmEgress', () => {
  test('TLS origination renders as the client speaking TLS: target port 443, protocol https, host matched by SNI', () => {
    expect(render({ service: serviceSpec() })).toEqual({
      apiVersion: 'policy.openservicemesh.io/v1alpha1',
      kind: 'Egress',
      metadata: { name: 'httpbin', namespace: 'curl' },
      spec: {
        sources: [{ kind: 'ServiceAccount', name: 'curl', namespace: 'curl' }],
        hosts: ['httpbin.org'],
        ports: [{ number: 443, protocol: 'https' }],
      },
    });
  });

  test('plaintext http, http2 and grpc ports become http ports on the same number', () => {
    const egress = render({
      service: serviceSpec({
        ports: [
          { port: 80, protocol: 'http', targetPort: 80 },
          { port: 8080, protocol: 'http2', targetPort: 8080 },
          { port: 9000, protocol: 'grpc', targetPort: 9000 },
        ],
      }, PLAINTEXT),
    });
    expect(egress.spec.ports).toEqual([{ number: 80, protocol: 'http' }, { number: 8080, protocol: 'http' }, { number: 9000, protocol: 'http' }]);
  });

  test('two TLS ports to the same target port collapse into one https port', () => {
    const egress = render({ service: serviceSpec({ ports: [{ port: 80, protocol: 'http', targetPort: 443 }, { port: 81, protocol: 'grpc', targetPort: 443 }] }) });
    expect(egress.spec.ports).toEqual([{ number: 443, protocol: 'https' }]);
  });

  test('plaintext TCP with IPv4 endpoints: tcp port and /32 ipAddresses', () => {
    const egress = render({
      service: serviceSpec({ host: 'tcpbin.com', ports: [{ port: 4242, protocol: 'tcp', targetPort: 4242 }], endpoints: [{ address: '203.0.113.5', priority: 0 }, { address: '203.0.113.6', port: 4242, priority: 0 }] }, PLAINTEXT),
    });
    expect(egress.spec.ports).toEqual([{ number: 4242, protocol: 'tcp' }]);
    expect(egress.spec.ipAddresses).toEqual(['203.0.113.5/32', '203.0.113.6/32']);
  });

  test('sources and HTTPRouteGroup matches', () => {
    const egress = render({ service: serviceSpec({ ports: [{ port: 80, protocol: 'http', targetPort: 80 }] }, PLAINTEXT) }, {
      sources: [{ name: 'curl', namespace: 'curl' }, { name: 'batch', namespace: 'jobs' }],
      httpRouteGroups: ['httpbin-get'],
    });
    expect(egress.spec.sources).toEqual([
      { kind: 'ServiceAccount', name: 'curl', namespace: 'curl' },
      { kind: 'ServiceAccount', name: 'batch', namespace: 'jobs' },
    ]);
    expect(egress.spec.matches).toEqual([{ apiGroup: SMI_SPECS_API_GROUP, kind: 'HTTPRouteGroup', name: 'httpbin-get' }]);
  });

  test('a wildcard host is allowed (HTTP Host and SNI matching accept wildcards)', () => {
    expect(render({ service: serviceSpec({ host: '*.httpbin.org' }) }).spec.hosts).toEqual(['*.httpbin.org']);
  });

  test('TLS 1.2 or auto as minimum is the client default and no error', () => {
    expect(() => render({ service: serviceSpec({}, { minVersion: 'TLSAuto' }) })).not.toThrow();
  });

  describe('throws', () => {
    const throwsWith = (input: MeshRenderInput, options: Partial<OsmEgressRenderOptions>, ...parts: (string | RegExp)[]) => {
      expectThrownMessage(() => render(input, options), /OSM/, ...parts);
    };

    test.each([
      ['tls.verification', { mode: 'SkipAll' as const }],
      ['tls.minVersion', { minVersion: 'TLS13' as const }],
      ['tls.maxVersion', { maxVersion: 'TLS12' as const }],
      ['tls.caCertificate', { caPem: '-----BEGIN CERTIFICATE-----' }],
      ['tls.clientCertificate', { clientCertFile: '/c' }],
      ['tls.clientKey', { clientKeyFile: '/k' }],
      ['tls.serverName', { serverName: 'other.httpbin.org' }],
      ['tls.subjectAltNames', { subjectAltNames: [{ type: 'Exact' as const, value: 'httpbin.org' }] }],
      ['tls.allowRenegotiation', { allowRenegotiation: true }],
    ])('throws when %s is set (OSM does not originate TLS)', (field, tls) => {
      throwsWith({ service: serviceSpec({}, tls) }, {}, `'${field}'`, /does not originate TLS/);
    });
    test('throws when a plaintext port is remapped', () => {
      throwsWith({ service: serviceSpec({ ports: [{ port: 8080, protocol: 'http', targetPort: 80 }] }, PLAINTEXT) }, {}, '\'ports[0]\'', /port the client dialled/);
    });
    test('throws when an HTTP service has endpoints', () => {
      throwsWith({ service: serviceSpec({ endpoints: [{ address: '203.0.113.5', priority: 0 }] }) }, {}, '\'endpoints\'', /cannot redirect/);
    });
    test('throws when plaintext TCP has no endpoints to match by IP', () => {
      throwsWith({ service: serviceSpec({ ports: [{ port: 4242, protocol: 'tcp', targetPort: 4242 }] }, PLAINTEXT) }, {}, '\'ports\' [4242]', /every address/);
    });
    test('throws when a TCP endpoint is a name or IPv6', () => {
      throwsWith({ service: serviceSpec({ ports: [{ port: 4242, protocol: 'tcp', targetPort: 4242 }], endpoints: [{ address: 'tcpbin.com', priority: 0 }, { address: '2001:db8::1', priority: 0 }] }, PLAINTEXT) },
        {}, '\'endpoints[0].address\' "tcpbin.com"', '\'endpoints[1].address\' "2001:db8::1"');
    });
    test('throws when TCP endpoint priorities differ', () => {
      throwsWith({ service: serviceSpec({ ports: [{ port: 4242, protocol: 'tcp', targetPort: 4242 }], endpoints: [{ address: '203.0.113.5', priority: 0 }, { address: '203.0.113.6', priority: 1 }] }, PLAINTEXT) },
        {}, '\'endpoints[].priority\'');
    });
    test('throws when there are no sources', () => {
      throwsWith({ service: serviceSpec() }, { sources: [] }, '\'sources\' []');
    });
    test('throws when HTTPRouteGroups are given but no http port renders', () => {
      throwsWith({ service: serviceSpec() }, { httpRouteGroups: ['get'] }, '\'httpRouteGroups\' ["get"]');
    });
    test('throws when retries, timeouts, injected headers or pool tuning are set', () => {
      throwsWith({
        service: serviceSpec({ retry: DEFAULT_RETRY, timeouts: { dnsMs: 1 }, injectHeaders: [{ name: 'X-Key', valueFile: '/k' }], pool: { maxConnections: 1, keepAliveTimeoutMs: 1 } }),
      }, {}, /4 problems/, '\'retry\'', '\'timeouts\'', '\'injectHeaders\'', '\'pool\'');
    });
  });

  test('the Egress and MeshConfig pass the strict validator', () => {
    const objects = [
      render({ service: serviceSpec() }, { name: 'httpbin-tls' }),
      render({ service: serviceSpec({ ports: [{ port: 80, protocol: 'http', targetPort: 80 }] }, PLAINTEXT) }, { httpRouteGroups: ['httpbin-get'] }),
      render({
        service: serviceSpec({ host: 'tcpbin.com', ports: [{ port: 4242, protocol: 'tcp', targetPort: 4242 }], endpoints: [{ address: '203.0.113.5', priority: 0 }] }, PLAINTEXT),
      }, { name: 'tcpbin' }),
      renderOsmMeshConfig({ name: 'osm-mesh-config', namespace: 'osm-system', enableEgress: false, enableEgressPolicy: true }),
    ];
    const result = validateObjects(objects);
    expect(result.messages).toEqual([]);
    expect(result).toMatchObject({ passed: 4, failed: 0 });
  });
});

describe('renderOsmMeshConfig', () => {
  test('sets exactly the two egress switches', () => {
    expect(renderOsmMeshConfig({ name: 'osm-mesh-config', namespace: 'osm-system', enableEgress: true, enableEgressPolicy: false })).toEqual({
      apiVersion: 'config.openservicemesh.io/v1alpha2',
      kind: 'MeshConfig',
      metadata: { name: 'osm-mesh-config', namespace: 'osm-system' },
      spec: { traffic: { enableEgress: true }, featureFlags: { enableEgressPolicy: false } },
    });
  });
});

test('throws when an OSM object has a field its schema does not declare', () => {
  const egress = renderOsmEgress({ service: serviceSpec() }, OPTIONS);
  const result = validateObjects([{ ...egress, spec: { ...egress.spec, tls: true } }]);
  expect(result.messages).toHaveLength(1);
  expect(result.messages[0]).toMatch(/^Egress \S+ \(objects\.yaml#0\) \/spec\/tls: unknown field "tls".* \[unknown-field\]$/);
});
